"""What the knobs do, in dB: the pedal's small-signal gain at each knob setting.

    .venv/bin/python benchmarks/knobs.py [--engine circuit|neural] [--level-dbfs -60]

A sine (1 mV, -60 dBFS with full scale = 1 V, small enough that even Gain 1 does not clip)
runs through the whole pedal from rest; the gain is the output's amplitude at the sine's
frequency over the input's, measured by one DFT bin over whole cycles after 0.2 s of settling.
Tables: Level at Gain 0 (Treble 0.5), Treble at 1 kHz and 3 kHz (Gain 0, Level 0.5), and Gain
(Treble 0.5, Level 0.5). Prints Markdown tables; asserts nothing.
"""
import argparse

import numpy as np

from klon import Centaur

RATE = 44_100
SETTLE = 0.2  # seconds: the input buffer's and the treble control's coupling caps settle
MEASURE = 0.2  # seconds of whole cycles measured
STEPS = (0.0, 0.25, 0.5, 0.75, 1.0)


def gain_db(frequency, volts, engine="circuit", gain=0.0, treble=0.5, level=0.5):
    """20 log10(output / input amplitude) at `frequency` through the whole pedal."""
    cycles = max(1, round(MEASURE * frequency))
    n = round(cycles * RATE / frequency)  # whole cycles (to a sample) in the measured part
    settle = round(SETTLE * RATE)
    t = np.arange(settle + n) / RATE
    x = volts * np.sin(2 * np.pi * frequency * t)
    y = Centaur(RATE, gain, treble, level, engine=engine)(x).astype(np.float64)
    basis = np.exp(-2j * np.pi * frequency * t[settle:])
    amplitude_in = abs(np.dot(x[settle:], basis))
    amplitude_out = abs(np.dot(y[settle:], basis))
    return 20 * np.log10(max(amplitude_out, 1e-30) / amplitude_in)


def table(title, header, rows):
    print(f"\n{title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---:" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def db(value):
    return "-inf" if value < -200 else f"{value:+.1f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", default="circuit", choices=["circuit", "neural"])
    parser.add_argument("--level-dbfs", type=float, default=-60.0,
                        help="the test sine's level, dB re 1 V peak (default -60)")
    args = parser.parse_args()
    volts = 10 ** (args.level_dbfs / 20)
    e = args.engine
    print(f"Small-signal gain of the whole pedal ({e} engine, {RATE} Hz, sine at "
          f"{args.level_dbfs:g} dBFS = {1000 * volts:.3g} mV peak), dB out/in")
    table("Level (Gain 0, Treble 0.5, 1 kHz)", ["Level", *map(str, STEPS)],
          [["dB", *(db(gain_db(1000, volts, e, level=v)) for v in STEPS)]])
    table("Treble (Gain 0, Level 0.5)", ["Treble", *map(str, STEPS)],
          [[f"{f / 1000:g} kHz", *(db(gain_db(f, volts, e, treble=v)) for v in STEPS)]
           for f in (1000, 3000)])
    table("Gain (Treble 0.5, Level 0.5, 1 kHz)", ["Gain", *map(str, STEPS)],
          [["dB", *(db(gain_db(1000, volts, e, gain=v)) for v in STEPS)]])


if __name__ == "__main__":
    main()
