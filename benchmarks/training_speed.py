"""Training speed: one forward + backward pass (BPTT) of a GRU + Dense(1) over 2048-sample
windows, torch's nn.GRU against klon's fused kernels, same weights, same data, same run.

    .venv/bin/python benchmarks/training_speed.py [--hidden 8] [--threads 2]

Prints nanoseconds per sample (one sample of one clip, forward and backward) by batch size.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numba  # noqa: E402
import torch  # noqa: E402

from klon.train.nets import GainStageNet  # noqa: E402


def time_step(model, x, repeats):
    best = float("inf")
    for _ in range(repeats + 1):  # the first run compiles / warms up
        model.zero_grad()
        started = time.perf_counter()
        y, _ = model(x)
        (y ** 2).mean().backward()
        best = min(best, time.perf_counter() - started)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    numba.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = GainStageNet(args.hidden)
    print(f"GRU-{args.hidden} + Dense, {args.steps}-sample windows, {args.threads} threads, "
          f"torch {torch.__version__}, numba {numba.__version__}")
    print(f"{'batch':>6} {'torch ns/sample':>16} {'fused ns/sample':>16} {'speed-up':>9}")
    for batch in (8, 16, 32, 64, 128):
        x = torch.randn(batch, args.steps, 1) * 0.3
        samples = batch * args.steps
        model.fused = False
        t_torch = time_step(model, x, args.repeats) / samples * 1e9
        model.fused = True
        t_fused = time_step(model, x, args.repeats) / samples * 1e9
        print(f"{batch:>6} {t_torch:>16.0f} {t_fused:>16.1f} {t_torch / t_fused:>8.0f}x")


if __name__ == "__main__":
    main()
