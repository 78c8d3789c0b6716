"""The sweep docs/sweeps.md reports: runs `klon sweep` on a sweep file (GRU vs LSTM, 4..24
units, with and without the Gain input, on circuit renders), times it, and rewrites the results
section of docs/sweeps.md (the leaderboard, the plot, the time, and what the best of each kind
reached).

    .venv/bin/python benchmarks/sweep_report.py [--config benchmarks/sweeps/architectures.toml]
        [--out out/sweeps/architectures] [--reuse --wall-minutes M]

--reuse reports a sweep already run into --out (give its wall time, measured outside).
"""
import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from klon.core.files import rewrite_after  # noqa: E402

MARKER = "<!-- sweep results -->"
IMAGE = "img/sweep-architectures.png"


def best_of_each(rows):
    """The best trial of each (cell, conditioned) group."""
    groups = {}
    for row in rows:
        if row["best_esr"] is None:
            continue
        key = (row["cell"], row["knobs"] != "-")
        if key not in groups or row["best_esr"] < groups[key]["best_esr"]:
            groups[key] = row
    return groups


def report(config, out, wall_minutes, doc):
    rows = json.loads((out / "leaderboard.json").read_text())
    table = (out / "leaderboard.md").read_text()
    shutil.copyfile(out / "leaderboard.png", doc.parent / IMAGE)
    trial_minutes = sum(r["seconds"] for r in rows) / 60
    stopped = sum(r["status"] == "stopped early" for r in rows)
    lines = [
        f"## A sweep on this machine: `{config.relative_to(ROOT)}`", "",
        "```sh",
        f".venv/bin/python benchmarks/sweep_report.py --config {config.relative_to(ROOT)}",
        "```", "",
        f"{len(rows)} trials on a local Ray of 2 cores (one trial per core), "
        f"{wall_minutes:.1f} minutes of wall time including the data render and the cost "
        f"measurements; the trials trained {trial_minutes:.1f} core-minutes in all, and ASHA "
        f"stopped {stopped} of them at the first rung. Validation ESR is on the clips each "
        f"trial held out (1 in 16 of the same renders).", "",
        table.rstrip(), "",
        f"![validation ESR against cost]({IMAGE})", "",
        "The best of each kind:", "",
        "| kind | best trial | best validation ESR % | epochs | ns/sample "
        "| M7 instructions/sample |",
        "|---|---|---:|---:|---:|---:|"]
    for (cell, conditioned), row in sorted(best_of_each(rows).items()):
        kind = f"{cell.upper()}, {'Gain input' if conditioned else 'audio only'}"
        m7 = "-" if row["cortex_m7"] is None else f"{row['cortex_m7']:.0f}"
        lines.append(f"| {kind} | {cell.upper()}-{row['hidden']} | {100 * row['best_esr']:.3f} | "
                     f"{row['epochs']} | {row['ns_per_sample']:.1f} | {m7} |")
    text = "\n".join(lines) + "\n"
    if rewrite_after(doc, MARKER, "\n" + text):
        print(f"rewrote {doc}", file=sys.stderr)
    print(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path,
                        default=ROOT / "benchmarks" / "sweeps" / "architectures.toml")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "sweeps" / "architectures")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "sweeps.md")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--wall-minutes", type=float, default=None)
    args = parser.parse_args()
    config = args.config.resolve()
    if args.reuse:
        if args.wall_minutes is None:
            parser.error("--reuse needs --wall-minutes (the sweep's time, measured outside)")
        wall = args.wall_minutes
    else:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "klon.cli", "sweep", str(config), "--out",
                        str(args.out)], check=True)
        wall = (time.perf_counter() - started) / 60
    report(config, args.out.resolve(), wall, args.doc.resolve())


if __name__ == "__main__":
    main()
