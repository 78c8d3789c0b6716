"""`klon live` in real time on a JACK server with its dummy driver: xruns, callback load and the
looped-back levels, per engine.

    .venv/bin/python benchmarks/live.py [--seconds 60] [--rate 48000] [--block 64]
        [--engines circuit neural] [--repeats 1] [--tone 1000] [--meter-after 3]

Starts jackd in real-time mode (`jackd -R -d dummy -r RATE -p BLOCK`) under a name of its own,
with the loopback of klon.live.loopback (the test tone from output 2 back to the input, wired
before klon starts), runs `klon live --engine E --seconds S --test-tone HZ --meter-after M` per
engine and repeat, and prints the table docs/live.md quotes: callbacks, xruns (of them, stalls
of the server's own clock, from jackd's log), callbacks that began late (more than 1.5 periods
after the one before), callback load p50/p99/p99.9/max (% of the block period) and the level
errors (the tone that came back against the one sent; the pedal's output against the pedal run
offline on the same tone). The load average goes beside each run: the figures are the
machine's as much as klon's, and they mean something on a quiet machine only.

Prints only; asserts nothing (a run that does not complete is an error, exit status 1).
"""
import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numba

from klon.live.loopback import JackServer, LiveRun, clock_stalls, level_errors

START_TIMEOUT = 600  # seconds for klon live to start streaming (a fresh clone compiles)


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def run_engine(server: JackServer, folder: Path, engine: str, args: argparse.Namespace) -> dict:
    """One run; its report, with the server's xrun lines and the load averages added."""
    folder.mkdir()
    before, load_before = len(server.xrun_lines()), load_average()
    run = LiveRun(server, folder, "--engine", engine, "--test-tone", str(args.tone),
                  "--meter-after", str(args.meter_after), seconds=args.seconds)
    try:
        report = run.finish(START_TIMEOUT + 10 * args.seconds)
    finally:
        run.kill()
    report["server_xruns"] = server.xrun_lines()[before:]
    report["load_average"] = (load_before, load_average())
    return report


def row(engine: str, seconds: float, report: dict) -> str:
    load = report["load_percent"]
    tone_db, pedal_db = level_errors(report)
    stalls = clock_stalls(report["server_xruns"])
    return (f"| {engine} | {seconds:g} | {report['callbacks']} | {report['xruns']} ({stalls}) "
            f"| {report['late_starts']} | {load['p50']:.1f} % | {load['p99']:.1f} % "
            f"| {load['p99.9']:.1f} % | {load['max']:.1f} % | {tone_db:+.5f} dB / "
            f"{pedal_db:+.5f} dB | {report['load_average'][0]} -> "
            f"{report['load_average'][1]} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="audio per run (default 60)")
    parser.add_argument("--rate", type=int, default=48_000, help="sample rate (default 48000)")
    parser.add_argument("--block", type=int, default=64,
                        help="frames per block, the server's period too (default 64)")
    parser.add_argument("--engines", nargs="+", default=["circuit", "neural"],
                        choices=["circuit", "neural"], help="(default: both)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per engine (default 1)")
    parser.add_argument("--tone", type=float, default=1000.0,
                        help="test tone, Hz (default 1000)")
    parser.add_argument("--meter-after", type=float, default=3.0,
                        help="the levels leave out this much of the start, s (default 3)")
    args = parser.parse_args()

    print(f"# klon live, real time: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, numba {numba.__version__}; load average (1, 5, "
          f"15 min) {load_average()}")
    with tempfile.TemporaryDirectory(prefix="klon-live-bench-") as folder:
        folder = Path(folder)
        with JackServer(folder / "jackd.log", args.rate, args.block, realtime=True) as server:
            print(f"# {' '.join(server.command)}; klon live --engine E --seconds "
                  f"{args.seconds:g} --test-tone {args.tone:g} --meter-after "
                  f"{args.meter_after:g}, the tone looped from output 2 to the input\n")
            print("| engine | seconds | callbacks | xruns (server stalls) | late starts "
                  "| load p50 | p99 | p99.9 | max | level error: tone back / pedal out "
                  "| load average before -> after |")
            print("|---|---:|---:|---|---:|---:|---:|---:|---:|---|---|")
            for repeat in range(args.repeats):
                for engine in args.engines:
                    started = time.monotonic()
                    try:
                        report = run_engine(server, folder / f"{engine}-{repeat}", engine, args)
                    except RuntimeError as error:
                        print(f"{engine}: the run failed: {error}", file=sys.stderr)
                        return 1
                    print(row(engine, args.seconds, report), flush=True)
                    wall = time.monotonic() - started
                    if report["stopped_by"] != "seconds":
                        print(f"  ({engine}: stopped by {report['stopped_by']} after "
                              f"{wall:.0f} s)", flush=True)
    print("\nLoad: % of the block period. Xruns: counted from the stream's status flags; in "
          "brackets, the stalls of jackd's own clock during the run (from its log), each of "
          "which reaches every client as an xrun.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
