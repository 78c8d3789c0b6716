"""Aliasing against fidelity for neural model sets: the figures of docs/aliasing.md's neural
section.

    .venv/bin/python benchmarks/neural_aliasing.py SET_OR_FOLDER... [--gains 0.5,1]

For each model set (a shipped name or a folder of model files) at each Gain: the SAR over the
tones 1.2, 2, 4 and 8 kHz at 0.3 and 1 V (klon.tools.aliasing, 44.1 kHz, median and worst of
the 8), and the ESR of the neural gain stage against the circuit's on the reference DI clips
sample372..sample399 and on three generated riffs (peaks 0.1, 0.3 and 1 V), against the default
circuit render (2x) and against the near alias-free one (klon dataset --band-limited), from
0.1 s on. A few seconds per set and Gain.
"""
import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from klon.core import audio  # noqa: E402
from klon.core.paths import find_data  # noqa: E402
from klon.dsp.synth import guitar_riff  # noqa: E402
from klon.neural import ModelBank  # noqa: E402
from klon.pedal import GainStage  # noqa: E402
from klon.tools import aliasing  # noqa: E402
from klon.train.dataset import BAND_LIMITED_FACTOR, band_limited_stage, targets  # noqa: E402

RATE = 44_100
HELD_OUT = [f"sample{i}" for i in range(372, 400)]
RIFFS = ((0.1, 3), (0.3, 1), (1.0, 2))  # (peak volts, seed)
SKIP = int(0.1 * RATE)


def esr(stage, clips, circuit, factor=1):
    """Pooled ESR (%) of the neural stage against the circuit's render (klon.train.dataset.
    targets, `factor` times the rate) over the clips."""
    error = energy = 0.0
    for x in clips:
        y = stage(x.astype(np.float64).reshape(1, -1))[0]
        t = targets(circuit, x, factor=factor)
        error += float(np.sum((y[SKIP:] - t[SKIP:]) ** 2))
        energy += float(np.sum(t[SKIP:] ** 2))
    return 100 * error / energy


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="shipped set names or model folders")
    parser.add_argument("--gains", default="0.5,1")
    args = parser.parse_args()
    data = find_data()
    di = [audio.read(data / "klon-ltspice" / "DataIn" / f"{n}.wav")[0][0] for n in HELD_OUT]
    riffs = [guitar_riff(RATE, 4.0, peak, seed=seed) for peak, seed in RIFFS]
    print("| models | Gain | SAR median, worst (dB) | DI ESR % vs 2x, vs band-limited | "
          "riffs ESR % vs 2x, vs band-limited |\n|---|---:|---:|---:|---:|")
    for models in args.models:
        for gain in (float(g) for g in args.gains.split(",")):
            sars = [r.sar for r in aliasing.measure("neural", RATE, gain=gain,
                                                    amplitude=[0.3, 1.0], quick=True,
                                                    models=models)]
            stage = ModelBank(models, gain, sample_rate=RATE)
            default = GainStage(RATE, gain)
            band_limited = band_limited_stage(RATE, gain)
            scores = []
            for clips in (di, riffs):
                scores.append((esr(stage, clips, default),
                               esr(stage, clips, band_limited, BAND_LIMITED_FACTOR)))
            print(f"| {models} | {gain:g} | {statistics.median(sars):.1f}, {min(sars):.1f} | "
                  f"{scores[0][0]:.3f}, {scores[0][1]:.3f} | {scores[1][0]:.3f}, "
                  f"{scores[1][1]:.3f} |", flush=True)


if __name__ == "__main__":
    main()
