"""The circuit pedal's small-signal response at every host rate against its 192 kHz render:
the table of docs/aliasing.md's "The top end at every rate".

    .venv/bin/python benchmarks/top_end.py [--oversampling 4]

A 0.1 mV impulse (far below any clipping) through the whole circuit pedal, Treble and Level
0.5, at Gain 0, 0.5 and 1; its spectrum over 1 s (1 Hz bins) against the 192 kHz render's, in
dB: the value at 10 and 16 kHz where below the band's top, and the largest deviation from
20 Hz to the top of the band: 16 kHz, or the oversampling filters' passband edge (0.43 of the
rate) where that is lower. The impulse comes 0.1 s in, so the linear-phase oversampling filters'
pre-ringing, which a latency-compensated render would cut, is kept. The engine's default
oversampling for each rate unless --oversampling is given. A few seconds.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from klon import Centaur  # noqa: E402
from klon.dsp.oversampling import PASSBAND_EDGE  # noqa: E402

RATES = (22_050, 32_000, 44_100, 48_000, 88_200, 96_000, 176_400)
REFERENCE_RATE = 192_000
TOP = 16_000
LOWEST = 20
GAINS = (0.0, 0.5, 1.0)
VOLTS = 1e-4


def response(rate, gain, oversampling=None):
    """|H| in 1 Hz bins from 0 to TOP, from a VOLTS impulse through the pedal (1 s)."""
    pedal = Centaur(rate, gain=gain, treble=0.5, level=0.5, oversampling=oversampling)
    x = np.zeros(rate, np.float32)
    x[rate // 10] = VOLTS
    y = pedal(x).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(y))[:TOP + 1] / VOLTS
    return np.pad(spectrum, (0, TOP + 1 - spectrum.size), constant_values=np.nan)


def band_top(rate):
    """The highest frequency checked at this rate, Hz."""
    return int(min(TOP, PASSBAND_EDGE * rate))


def deviation(rate, gain, reference, oversampling=None):
    """dB against the reference, 0..TOP Hz (NaN above the band)."""
    db = 20 * np.log10(response(rate, gain, oversampling) / reference)
    db[band_top(rate) + 1:] = np.nan
    return db


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--oversampling", type=int, default=None, choices=[1, 2, 4])
    args = parser.parse_args()
    reference = {gain: response(REFERENCE_RATE, gain) for gain in GAINS}
    heads = " | ".join(f"Gain {g:g}: 10 kHz, 16 kHz, largest" for g in GAINS)
    print(f"| rate | band | {heads} |\n|---:|---:|" + "---:|" * len(GAINS))
    for rate in RATES:
        cells = []
        for gain in GAINS:
            db = deviation(rate, gain, reference[gain], args.oversampling)
            worst = LOWEST + int(np.nanargmax(np.abs(db[LOWEST:])))
            at = ", ".join("-" if np.isnan(db[f]) else f"{db[f]:+.2f}" for f in (10_000, 16_000))
            cells.append(f"{at}, {db[worst]:+.2f} at {worst / 1000:.1f} kHz")
        print(f"| {rate / 1000:g} kHz | to {band_top(rate) / 1000:.1f} kHz | "
              + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
