"""Compute time of the neural engine: one GRU-8 against torch, and the whole neural pedal.

    .venv/bin/python benchmarks/neural_speed.py [--seconds 3] [--repeats 3] [--models DIR]

1. GRU-8 + Dense(1) (a published model), mono: ns per sample and compute seconds per second of
   44.1 kHz audio, streamed through RecurrentModel.process block by block (out= preallocated),
   next to torch.nn.GRU(1, 8) + nn.Linear(8, 1) fed 4096-sample blocks with its state carried,
   on one thread (a GRU-8 step has nothing to share out; more threads only add noise when the
   machine is busy). torch is optional: without it that column is left out.
2. The neural pedal, stereo 44.1 kHz (each channel its own state), Gain at 0.5 (one model runs)
   and at 0.6 (two models run and are mixed), treble and level at 0.5.
Input: seeded white noise in [-1, 1) V. Median of the repeats. Prints tables; asserts nothing.

Times are the process's CPU time (--clock cpu, the default): on a machine shared with other work
the wall clock also counts the time the process waits for a core. --clock wall for wall time.
"""
import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

from klon import Centaur
from klon.neural import RecurrentModel

FS = 44_100
BLOCKS = "8,16,32,64,128,256,512,1024,2048,4096"
TORCH_BLOCK = 4096


def default_models():
    from klon.core.paths import find_data
    data = find_data()
    return data / "chowcentaur-models" if data else None


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def median_seconds(run, audio, block, out, repeats, reset, clock):
    """Median seconds to stream `audio` (channels x frames) in blocks."""
    n_blocks = audio.shape[-1] // block
    run(audio[..., :block], out[..., :block])  # compile and warm up outside the timing
    times = []
    for _ in range(repeats):
        reset()
        start = clock()
        for b in range(n_blocks):
            run(audio[..., b * block:(b + 1) * block], out[..., b * block:(b + 1) * block])
        times.append(clock() - start)
    return float(np.median(times)), n_blocks * block


def torch_ns_per_sample(audio, repeats, clock):
    """ns per sample of torch.nn.GRU(1, 8) + Linear(8, 1), 4096-sample blocks, state carried;
    None without torch."""
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    torch.set_num_threads(1)
    gru, dense = torch.nn.GRU(1, 8, batch_first=True), torch.nn.Linear(8, 1)
    x = torch.from_numpy(audio.astype(np.float32)).reshape(1, -1, 1)
    n_blocks = x.shape[1] // TORCH_BLOCK
    times = []
    with torch.inference_mode():
        gru(x[:, :TORCH_BLOCK])  # warm up
        for _ in range(repeats):
            h = torch.zeros(1, 1, 8)
            start = clock()
            for b in range(n_blocks):
                y, h = gru(x[:, b * TORCH_BLOCK:(b + 1) * TORCH_BLOCK], h)
                dense(y)
            times.append(clock() - start)
    return float(np.median(times)) / (n_blocks * TORCH_BLOCK) * 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--blocks", default=BLOCKS)
    parser.add_argument("--models", default=None,
                        help="folder of centaur_<G>.json (default: the reference data's)")
    parser.add_argument("--clock", default="cpu", choices=list(CLOCKS))
    args = parser.parse_args()
    clock = CLOCKS[args.clock]
    models = Path(args.models) if args.models else default_models()
    if models is None:
        raise SystemExit("no model folder: pass --models")
    blocks = [int(b) for b in args.blocks.split(",")]
    rng = np.random.default_rng(0)
    mono = rng.uniform(-1.0, 1.0, int(args.seconds * FS)).astype(np.float32)
    stereo = rng.uniform(-1.0, 1.0, (2, int(args.seconds * FS))).astype(np.float32)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; {args.seconds:g} s of audio, median of "
          f"{args.repeats}, {args.clock} time")
    torch_ns = torch_ns_per_sample(mono, args.repeats, clock)
    torch_note = (f"torch.nn.GRU(1, 8) + Linear, {TORCH_BLOCK}-sample blocks, one thread: "
                  f"{torch_ns:.0f} ns/sample" if torch_ns else "torch: not installed")
    print(f"\nGRU-8 + Dense(1), mono ({torch_note})")
    print(f"{'block':>6} {'ns/sample':>10} {'s/s':>9}" + (f" {'x torch':>8}" if torch_ns else ""))
    model = RecurrentModel(models / "centaur_50.json")
    out = np.empty_like(mono)
    for block in blocks:
        seconds, n = median_seconds(model.process, mono, block, out, args.repeats, model.reset,
                                    clock)
        ns = seconds / n * 1e9
        print(f"{block:>6} {ns:>10.1f} {seconds / (n / FS):>9.5f}"
              + (f" {torch_ns / ns:>7.0f}x" if torch_ns else ""), flush=True)

    print("\nneural pedal, stereo 44.1 kHz: compute s per s of audio (ns per sample per channel)")
    print(f"{'block':>6} {'gain 0.5':>9} {'(ns)':>6} {'gain 0.6':>9} {'(ns)':>6}")
    pedals = {g: Centaur(FS, gain=g, engine="neural", models=models) for g in (0.5, 0.6)}
    out = np.empty_like(stereo)
    for block in blocks:
        row = f"{block:>6}"
        for pedal in pedals.values():
            seconds, n = median_seconds(pedal.process, stereo, block, out, args.repeats,
                                        lambda p=pedal: p.reset(2), clock)
            row += f" {seconds / (n / FS):>9.4f} {seconds / (2 * n) * 1e9:>6.0f}"
        print(row, flush=True)


if __name__ == "__main__":
    main()
