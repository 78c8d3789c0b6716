"""Compute time of the circuit pedal per second of audio, by block size, and against ngspice.

    .venv/bin/python benchmarks/pedal_speed.py [--seconds 10] [--repeats 3]

Streams seeded white noise in [-1, 1) V (stereo, 44.1 kHz, knobs at 0.5, as the seed's benchmark
did) through Centaur.process block by block and prints compute seconds per second of audio
(median of the repeats, min and max beside it) and ns per sample per channel. Then times ngspice
on one 0.5 s mono clip of the gain stage and of the whole pedal against the model on the same clip.
Prints tables only; asserts nothing.
"""
import argparse
import platform
import time

import numpy as np

from klon import Centaur
from klon.dsp.synth import guitar_riff

SEED_CIRCUIT_SECONDS = {  # the original C++ plugin, 2017 laptop (the seed's table)
    8: 0.0723, 16: 0.0703, 32: 0.0653, 64: 0.0663, 128: 0.0667,
    256: 0.0697, 512: 0.0669, 1024: 0.0608, 2048: 0.0695, 4096: 0.0624,
}


def time_blocks(seconds, block_size, repeats, sample_rate=44_100, channels=2):
    rng = np.random.default_rng(0)
    audio = rng.uniform(-1.0, 1.0, (channels, int(seconds * sample_rate))).astype(np.float32)
    pedal = Centaur(sample_rate)
    out = np.empty((channels, block_size), dtype=np.float32)
    pedal.process(audio[:, :block_size], out)  # compile and warm up
    n_blocks = audio.shape[1] // block_size
    results = []
    for _ in range(repeats):
        pedal.reset(channels)
        start = time.perf_counter()
        for b in range(n_blocks):
            pedal.process(audio[:, b * block_size:(b + 1) * block_size], out)
        results.append((time.perf_counter() - start) / (n_blocks * block_size / sample_rate))
    return np.median(results), min(results), max(results)


def spice_ratio(sample_rate=44_100):
    from klon.spice import simulate
    from klon.tools.verify import model_output
    x = guitar_riff(sample_rate, 0.5).astype(np.float64)
    rows = []
    for stage in ("gain_stage", "pedal"):
        model_output(stage, x[:256], sample_rate)  # compile outside the timing
        start = time.perf_counter()
        model_output(stage, x, sample_rate)
        model_seconds = time.perf_counter() - start
        start = time.perf_counter()
        simulate(stage, x, sample_rate)
        spice_seconds = time.perf_counter() - start
        rows.append((stage, model_seconds, spice_seconds))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--blocks", default="8,16,32,64,128,256,512,1024,2048,4096")
    parser.add_argument("--no-spice", action="store_true")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}")
    print(f"circuit pedal, stereo 44.1 kHz white noise, {args.seconds:g} s, "
          f"median of {args.repeats}")
    print(f"{'block':>6} {'s/s median':>11} {'min':>8} {'max':>8} {'ns/sample/ch':>13} "
          f"{'seed C++':>9}")
    for block in (int(b) for b in args.blocks.split(",")):
        median, low, high = time_blocks(args.seconds, block, args.repeats)
        ns = median / (2 * 44_100) * 1e9
        print(f"{block:>6} {median:>11.4f} {low:>8.4f} {high:>8.4f} {ns:>13.0f} "
              f"{SEED_CIRCUIT_SECONDS.get(block, float('nan')):>9.4f}", flush=True)
    if not args.no_spice:
        print("\nagainst ngspice, one 0.5 s mono guitar clip (wall seconds)")
        print(f"{'stage':<12} {'model':>8} {'ngspice':>8} {'speed-up':>9}")
        for stage, model_seconds, spice_seconds in spice_ratio():
            print(f"{stage:<12} {model_seconds:>8.4f} {spice_seconds:>8.2f} "
                  f"{spice_seconds / model_seconds:>8.0f}x")


if __name__ == "__main__":
    main()
