"""The circuit pedal's small-signal response at every host rate against its 192 kHz render:
the table of docs/aliasing.md's "The top end at every rate".

    .venv/bin/python benchmarks/top_end.py [--oversampling 4]

A 0.1 mV impulse (far below any clipping) through the whole circuit pedal, Treble and Level
0.5, at Gain 0, 0.5 and 1; its spectrum over 1 s against the 192 kHz render's, in dB, at 10 and
16 kHz where below the rate's Nyquist (and 1 kHz where that differs by more than 0.05 dB). The
engine's default oversampling for each rate unless --oversampling is given. A few seconds.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from klon import Centaur  # noqa: E402

RATES = (22_050, 32_000, 44_100, 48_000, 88_200, 96_000)
REFERENCE_RATE = 192_000
FREQUENCIES = (1_000, 5_000, 10_000, 16_000)
GAINS = (0.0, 0.5, 1.0)
VOLTS = 1e-4


def response(rate, gain, oversampling=None):
    """|H| at FREQUENCIES from a VOLTS impulse through the pedal (1 s, 1 Hz bins)."""
    pedal = Centaur(rate, gain=gain, treble=0.5, level=0.5, oversampling=oversampling)
    x = np.zeros(rate, np.float32)
    x[0] = VOLTS
    y = pedal(x).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(y)) / VOLTS
    return np.array([spectrum[int(f)] if f < rate / 2 else np.nan for f in FREQUENCIES])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--oversampling", type=int, default=None, choices=[1, 2, 4])
    args = parser.parse_args()
    reference = {gain: response(REFERENCE_RATE, gain) for gain in GAINS}
    heads = " | ".join(f"Gain {g:g}, {f // 1000} kHz" for g in GAINS for f in FREQUENCIES[2:])
    print(f"| rate | {heads} |\n|---:|" + "---:|" * (len(GAINS) * 2))
    for rate in RATES:
        cells = []
        for gain in GAINS:
            db = 20 * np.log10(response(rate, gain, args.oversampling) / reference[gain])
            cells += ["-" if np.isnan(d) else f"{d:+.2f}" for d in db[2:]]
            if abs(db[0]) > 0.05:  # the top end is the question; the band below must agree
                cells[-1] += f" (1 kHz {db[0]:+.2f})"
        print(f"| {rate / 1000:g} kHz | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
