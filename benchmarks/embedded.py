"""The exported C on an emulated Cortex-M7: instructions per sample, share of a 600 MHz Teensy 4.0
at 44.1 kHz (one instruction per cycle assumed), sizes and accuracy against the Python engines,
for each build option. Prints a Markdown table (a few minutes: every row builds and runs QEMU).

    .venv/bin/python benchmarks/embedded.py [--seconds 0.5]
"""
import argparse

import numpy as np

from klon.embedded import measure as m

FAST = "-ffp-contract=fast"  # let gcc fuse multiply-adds (ISO C modes fuse nothing)
ROWS = [  # (what, case, optimisation, flags, fast activations, defines)
    ("neural pedal", m.Case(), "-O2", (), False, ()),
    ("neural pedal", m.Case(), "-O2", (), True, ()),
    ("neural pedal", m.Case(), "-O3", (FAST,), False, ()),
    ("neural pedal", m.Case(), "-O3", (FAST,), True, ()),
    ("neural pedal", m.Case(), "-O3", (FAST,), True, ("KLON_HISTORY=512",)),
    ("neural gain stage", m.Case(target="gain"), "-O2", (), False, ()),
    ("neural gain stage", m.Case(target="gain"), "-O3", (FAST,), True, ()),
    ("circuit gain stage", m.Case("circuit", "gain"), "-O2", (), False, ()),
    ("circuit gain stage", m.Case("circuit", "gain"), "-O3", (FAST,), False, ()),
    ("circuit pedal", m.Case("circuit"), "-O2", (), False, ()),
    ("circuit pedal", m.Case("circuit"), "-O3", (FAST,), False, ()),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="clip length (default 0.5)")
    args = parser.parse_args()
    x = m.reference_clip(args.seconds)
    block_ms = 1000 * m.BLOCK / 44_100
    print(f"Clip: {len(x)} samples of a reference DI clip, Gain 0.5, gliding to 1 from sample "
          f"{m.Case().move_at}; {m.BLOCK}-sample blocks ({block_ms:.2f} ms at 44.1 kHz).\n")
    print("| build | flags | instructions/sample | Teensy 4.0 share | during a Gain glide | "
          "worst block (ms at 600 MHz) | flash | RAM: state + stack | error vs Python "
          "(of peak) | M7 vs host build |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for what, case, optimisation, flags, fast, defines in ROWS:
        run, host, _ = m.measure(case, x, optimisation, fast, flags=flags, defines=defines)
        python = m.python_output(x, case)
        relative = np.max(np.abs(run.output - python)) / np.max(np.abs(python))
        options = " ".join([optimisation, *flags, *(["-DKLON_FAST_ACTIVATIONS"] if fast else []),
                            *[f"-D{d}" for d in defines]])
        worst_ms = 1000 * run.worst_block_instructions / m.TEENSY_HZ
        print(f"| {what} | `{options}` | **{run.instructions_per_sample:.0f}** | "
              f"{100 * run.teensy_share:.1f} % | {run.glide_instructions_per_sample:.0f} | "
              f"{worst_ms:.2f} | {run.flash_bytes / 1024:.1f} KB | {run.state_bytes} + "
              f"{run.stack_bytes} B | {relative:.1e} | {host:.1e} |", flush=True)


if __name__ == "__main__":
    main()
