"""`klon process` on a long file: peak memory (RSS) and wall time per engine.

Writes a long file into a temporary folder (a synthesized guitar riff, klon.dsp.synth, repeated
with a little noise so no two blocks are the same; written block by block, so making it costs
no memory), runs `klon process` on it as a user would (its own process) for each engine, and
prints a table. Peak RSS is the child's own maximum resident set (os.wait4's rusage), not the
benchmark's.

    .venv/bin/python benchmarks/long_file.py                    # 60 min stereo 48 kHz, both engines
    .venv/bin/python benchmarks/long_file.py --minutes 1        # a quick run
    .venv/bin/python benchmarks/long_file.py --engines circuit --rate 44100 --channels 1

The neural engine runs at its models' rates (44.1 and 48 kHz have shipped sets). Nothing here
asserts on time or memory.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from klon.dsp.synth import guitar_riff

BLOCK_SECONDS = 10


def make_input(path: Path, minutes: float, rate: int, channels: int) -> None:
    riff = guitar_riff(rate, seconds=BLOCK_SECONDS, peak_volts=0.3)
    rng = np.random.default_rng(0)
    frames = int(round(minutes * 60 * rate))
    with sf.SoundFile(str(path), "w", rate, channels, "PCM_24") as f:
        done = 0
        while done < frames:
            n = min(riff.size, frames - done)
            block = np.stack([np.roll(riff, 997 * c)[:n] for c in range(channels)], axis=1)
            block = block + 0.002 * rng.standard_normal(block.shape)
            f.write(block.astype(np.float32))
            done += n


def run(engine: str, source: Path, target: Path, extra: list[str]) -> dict:
    command = [sys.executable, "-m", "klon.cli", "process", str(source), str(target),
               "--engine", engine, *extra]
    start = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    stderr_text = []
    # read stderr while it runs (a full pipe would stall the child)
    import threading
    reader = threading.Thread(target=lambda: stderr_text.append(process.stderr.read()))
    reader.start()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - start
    reader.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    return {"engine": engine, "status": process.returncode, "wall_s": wall,
            "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux reports KiB
            "stderr": "".join(stderr_text).strip(),
            "output_mb": target.stat().st_size / 2 ** 20 if target.exists() else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="length of the file (60)")
    parser.add_argument("--rate", type=int, default=48_000, help="sample rate (48000)")
    parser.add_argument("--channels", type=int, default=2, help="channels (2)")
    parser.add_argument("--engines", default="circuit,neural", help="circuit,neural")
    parser.add_argument("--folder", default=None,
                        help="where the files go (default: a temporary folder, removed after)")
    parser.add_argument("--options", default="", help="more `klon process` options, quoted")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        source = Path(folder) / "long.wav"
        start = time.monotonic()
        make_input(source, args.minutes, args.rate, args.channels)
        size = source.stat().st_size / 2 ** 20
        print(f"input: {args.minutes:g} min, {args.channels} channel(s), {args.rate} Hz, "
              f"24-bit WAV, {size:.0f} MiB (made in {time.monotonic() - start:.0f} s)",
              flush=True)
        rows = []
        for engine in args.engines.split(","):
            target = Path(folder) / f"out-{engine}.wav"
            row = run(engine, source, target, args.options.split())
            rows.append(row)
            target.unlink(missing_ok=True)
            if row["status"] != 0:
                print(f"{engine}: exit status {row['status']}: {row['stderr']}", flush=True)
        seconds = args.minutes * 60
        print()
        print("| engine | audio | wall s | x real time | peak RSS MiB | output MiB | status |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for row in rows:
            print(f"| {row['engine']} | {args.minutes:g} min {args.channels} ch "
                  f"{args.rate / 1000:g} kHz | {row['wall_s']:.1f} | "
                  f"{seconds / row['wall_s']:.1f} | {row['peak_rss_mb']:.0f} | "
                  f"{row['output_mb']:.0f} | {row['status']} |")


if __name__ == "__main__":
    main()
