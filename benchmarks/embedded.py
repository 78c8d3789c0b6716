"""The exported C on an emulated Cortex-M7: instructions per sample, share of a 600 MHz Teensy 4.0
at 44.1 kHz (one instruction per cycle assumed), sizes and accuracy against the Python engines,
for each build option. Prints a Markdown table (a few minutes: every row builds and runs QEMU).

    .venv/bin/python benchmarks/embedded.py [--seconds 0.5]
"""
import argparse

import numpy as np

from klon.export.cortex_m7 import measure as m

FAST = "-ffp-contract=fast"  # let gcc fuse multiply-adds (ISO C modes fuse nothing)
PEDAL = m.Case(treble_after=0.25, level_after=0.75)  # all three knobs move
# Gain 0.6 between the 0.5 and 0.75 models: both run, the most a still Gain costs; no move
TWO_MODELS = m.Case(gain=0.6, move_at=1 << 30)
ROWS = [  # (what, case, optimisation, flags, fast activations, defines)
    ("neural pedal", PEDAL, "-O2", (), False, ()),
    ("neural pedal", PEDAL, "-O2", (), True, ()),
    ("neural pedal", PEDAL, "-O2", (), False, ("KLON_HISTORY=512",)),
    ("neural pedal", PEDAL, "-O3", (FAST,), False, ()),
    ("neural pedal", PEDAL, "-O3", (FAST,), True, ()),
    ("neural pedal", PEDAL, "-O3", (FAST,), True, ("KLON_HISTORY=512",)),
    ("neural pedal, Gain 0.6 (two models)", TWO_MODELS, "-O2", (), False, ()),
    ("neural pedal, Gain 0.6 (two models)", TWO_MODELS, "-O3", (FAST,), True,
     ("KLON_HISTORY=512",)),
    ("neural gain stage", m.Case(target="gain"), "-O2", (), False, ()),
    ("neural gain stage", m.Case(target="gain"), "-O3", (FAST,), True, ()),
    ("circuit gain stage", m.Case("circuit", "gain"), "-O2", (), False, ()),
    ("circuit gain stage", m.Case("circuit", "gain"), "-O3", (FAST,), False, ()),
    ("circuit pedal", m.Case("circuit", treble_after=0.25, level_after=0.75), "-O2", (), False,
     ()),
    ("circuit pedal", m.Case("circuit", treble_after=0.25, level_after=0.75), "-O3", (FAST,),
     False, ()),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="clip length (default 0.5)")
    args = parser.parse_args()
    x = m.reference_clip(args.seconds)
    block_ms = 1000 * m.BLOCK / 44_100
    print(f"Clip: {len(x)} samples of a reference DI clip; knobs at 0.5, from sample "
          f"{PEDAL.move_at} Gain gliding to 1 (pedal rows: Treble to 0.25, Level to 0.75 too); "
          f"{m.BLOCK}-sample blocks ({block_ms:.2f} ms at 44.1 kHz).\n")
    print("| build | flags | instructions/sample | Teensy 4.0 share | during the glide | "
          "worst block (ms at 600 MHz) | flash: library | flash: firmware | RAM: state + stack | "
          "error vs Python (of peak) | M7 vs host build |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for what, case, optimisation, flags, fast, defines in ROWS:
        run, host, _ = m.measure(case, x, optimisation, fast, flags=flags, defines=defines)
        python = m.python_output(x, case)
        relative = np.max(np.abs(run.output - python)) / np.max(np.abs(python))
        options = " ".join([optimisation, *flags, *(["-DKLON_FAST_ACTIVATIONS"] if fast else []),
                            *[f"-D{d}" for d in defines]])
        worst_ms = 1000 * run.worst_block_instructions / m.TEENSY_HZ
        glide = run.glide_instructions_per_sample
        print(f"| {what} | `{options}` | **{run.instructions_per_sample:.0f}** | "
              f"{100 * run.teensy_share:.1f} % | {f'{glide:.0f}' if glide else '-'} | "
              f"{worst_ms:.2f} | {run.flash_bytes / 1024:.1f} KB | "
              f"{run.firmware_flash_bytes / 1024:.1f} KB | {run.state_bytes} + "
              f"{run.stack_bytes} B | {relative:.1e} | {host:.1e} |", flush=True)


if __name__ == "__main__":
    main()
