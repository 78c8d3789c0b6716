"""Aliasing of every engine at three host rates: the tables of docs/aliasing.md.

    .venv/bin/python benchmarks/aliasing.py [--out docs/aliasing.md] [--rates 44100,48000,96000]

1. Median SAR (klon.tools.aliasing: 24 tones 200 Hz..10 kHz, the median over those asked at
   1 kHz and up) of the circuit engine at 1x, 2x (its default) and 4x oversampling, the neural
   engine with the default model set for the rate, and the near-alias-free reference, at Gain 0.5
   0.3 V, Gain 1 0.3 V and Gain 1 1 V (Treble and Level 0.5).
2. The target set, for the default engines (and the reference beside them): the tones 1.2, 2, 4
   and 8 kHz at 0.3 and 1 V, Gain 0.5 and 1, 16 tones in all: median and worst SAR.

About a minute of CPU time for the three rates.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from klon.core.files import rewrite_after  # noqa: E402
from klon.neural.gain_stage import default_models  # noqa: E402
from klon.pedal.gain_stage import default_oversampling  # noqa: E402
from klon.tools import aliasing  # noqa: E402

RATES = (44_100, 48_000, 96_000)
CONDITIONS = ((0.5, 0.3), (1.0, 0.3), (1.0, 1.0))  # (Gain, volts)
TARGET_GAINS, TARGET_VOLTS = (0.5, 1.0), (0.3, 1.0)


def engines(rate):
    """(row name, measure's keywords) for every row of the first table."""
    default = default_oversampling(rate)
    rows = [(f"circuit {f}x" + (" (default)" if f == default else ""),
             {"engine": "circuit", "oversampling": f}) for f in (1, 2, 4)]
    factor = aliasing.reference_factor(rate)
    return rows + [(f"neural `{default_models(rate)}` (default)", {"engine": "neural"}),
                   (f"reference (circuit 4x at {factor * rate / 1000:g} kHz)",
                    {"engine": "reference"})]


def median_table(rate):
    """Rows of (name, median SAR per condition)."""
    rows = []
    for name, options in engines(rate):
        medians = []
        for gain, volts in CONDITIONS:
            results = aliasing.measure(sample_rate=rate, gain=gain, amplitude=volts, **options)
            medians.append(aliasing.summarize(results)[0]["median_sar"])
        rows.append((name, medians))
    return rows


def target_table(rate):
    """Rows of (name, median, worst) over the 16 target tones."""
    rows = []
    for name, options in engines(rate):
        if "default" not in name and options["engine"] != "reference":
            continue
        sars = [r.sar for gain in TARGET_GAINS
                for r in aliasing.measure(sample_rate=rate, gain=gain, amplitude=TARGET_VOLTS,
                                          quick=True, **options)]
        rows.append((name, statistics.median(sars), min(sars)))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "aliasing.md"))
    parser.add_argument("--rates", default=",".join(map(str, RATES)))
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]

    started = time.process_time()
    lines = [f"Measured by `.venv/bin/python benchmarks/aliasing.py"
             f"{'' if tuple(rates) == RATES else ' --rates ' + args.rates}`: SAR in dB, "
             f"{aliasing.SIZE} samples analysed after {aliasing.SETTLE:g} s (a "
             f"{aliasing.FADE * 1000:g} ms fade-in included), Treble and Level 0.5.", ""]
    for rate in rates:
        tones = [t for t in aliasing.default_tones(rate) if t >= aliasing.SUMMARY_FROM]
        lines += [f"### {rate / 1000:g} kHz", "",
                  f"Median SAR over the {len(tones)} default tones from {tones[0]:g} Hz to "
                  f"{tones[-1]:g} Hz:",
                  "", "| engine | Gain 0.5, 0.3 V | Gain 1, 0.3 V | Gain 1, 1 V |",
                  "|---|---:|---:|---:|"]
        for name, medians in median_table(rate):
            lines.append(f"| {name} | " + " | ".join(f"{m:.1f}" for m in medians) + " |")
        lines += ["", "The target set: 1.2, 2, 4 and 8 kHz at 0.3 and 1 V, Gain 0.5 and 1 "
                  "(16 tones):", "", "| engine | median | worst |", "|---|---:|---:|"]
        for name, median, worst in target_table(rate):
            lines.append(f"| {name} | {median:.1f} | {worst:.1f} |")
        lines.append("")
        print(f"{rate} Hz done, {time.process_time() - started:.0f} s CPU", file=sys.stderr)
    text = "\n".join(lines)
    print(text)
    if rewrite_after(args.out, "<!-- tables -->", text):
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
