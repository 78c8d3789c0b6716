"""Scores of the shipped neural model sets, their training curves, and docs/neural-models.md.

    .venv/bin/python benchmarks/neural_models.py [--out docs/neural-models.md]

- `ltspice`: each model on its own validation clips of the reference data (the names are in
  its metadata), beside the original plugin's model on the same clips and the paper's figure.
- `circuit*`: each model against the circuit gain stage (1N34A) on the reference DI clips it
  held out, and on a generated riff that no training set contains.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from klon.core import audio  # noqa: E402
from klon.core.files import rewrite_after  # noqa: E402
from klon.core.metrics import clip_esr  # noqa: E402
from klon.core.paths import find_data  # noqa: E402
from klon.dsp.synth import guitar_riff  # noqa: E402
from klon.pedal import GainStage  # noqa: E402
from klon.train import data as datasets  # noqa: E402
from klon.train import export  # noqa: E402
from klon.train.evaluate import predict, score  # noqa: E402
from klon.train.plots import plot_curves  # noqa: E402

MODELS = ROOT / "src" / "klon" / "models"
GAINS = (0.0, 0.25, 0.5, 0.75, 1.0)
PAPER_VALIDATION = {0.0: 0.70, 0.25: 0.57, 0.5: 0.50, 0.75: 0.67, 1.0: 1.72}  # ESR %


def _models(name):
    folder = MODELS / name
    for gain in GAINS:
        path = folder / f"gain_{round(100 * gain)}.json"
        if path.exists():
            yield gain, path


def ltspice_rows(data_root):
    rows = []
    for gain, path in _models("ltspice"):
        model, meta = export.load(path)
        data = datasets.load(data_root / "klon-ltspice", gain)
        clips = meta["validation_clips"]
        per_clip, pooled = score(model, data, clips)
        original, _ = export.load(data_root / "chowcentaur-models" /
                                  f"centaur_{round(100 * gain)}.json")
        o_clip, o_pooled = score(original, data, clips)
        rows.append((gain, 100 * pooled, 100 * per_clip.mean(), 100 * o_pooled,
                     100 * o_clip.mean(), PAPER_VALIDATION[gain], meta["epochs"],
                     meta["training_seconds"], meta))
    return rows


def _circuit_clip(x, gain, rate, context=datasets.CONTEXT):
    x = np.r_[np.zeros(context, np.float32), x].astype(np.float32)
    y = GainStage(rate, gain)(x.astype(np.float64).reshape(1, -1))[0]
    return x, y.astype(np.float32)


def circuit_rows(name, data_root):
    rows = []
    for gain, path in _models(name):
        model, meta = export.load(path)
        rate = meta["sample_rate"]
        riff = guitar_riff(rate, 4.0, 0.3)
        held_out = [c.split("@")[0] for c in meta["validation_clips"] if c.startswith("sample")]
        xs, ys = [], []
        for clip in held_out:
            x, clip_rate = audio.read(data_root / "klon-ltspice" / "DataIn" / f"{clip}.wav")
            # resampled to the set's rate, as `klon dataset` did
            x, y = _circuit_clip(audio.resample(x[0], clip_rate, rate), gain, rate)
            xs.append(x)
            ys.append(y)
        s = datasets.CONTEXT
        per_clip, pooled = clip_esr(predict(model, np.stack(xs))[:, s:], np.stack(ys)[:, s:])
        rx, ry = _circuit_clip(riff, gain, rate)
        _, riff_esr = clip_esr(predict(model, rx)[None, s:], ry[None, s:])
        rows.append((gain, len(held_out), 100 * pooled, 100 * per_clip.mean(), 100 * riff_esr,
                     100 * meta["validation_esr"], meta["epochs"], meta["training_seconds"], meta))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "neural-models.md"))
    args = parser.parse_args()
    data_root = find_data()
    if data_root is None:
        sys.exit("the reference data (../shared/data) is needed")
    images = ROOT / "docs" / "img"
    images.mkdir(parents=True, exist_ok=True)
    lines = []

    rows = ltspice_rows(data_root)
    if rows:
        lines += ["## `ltspice`: GRU-8 on the original work's data", "",
                  "Validation ESR in % on each model's 25 held-out reference clips (scored from "
                  "sample 14000). *Pooled* is equation 7 over all 25 clips together, *mean* the "
                  "average of the 25 clips' own ESRs. The original plugin's models "
                  "(chowcentaur-models) are scored on the same clips; they were trained on "
                  "clips 0..399, so these are training clips for them.", "",
                  "| gain | ours pooled | ours mean | original plugin pooled | original plugin "
                  "mean | paper (validation) | epochs | training time |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for g, p, m, op, om, paper, epochs, seconds, _ in rows:
            lines.append(f"| {g:g} | **{p:.3f}** | {m:.3f} | {op:.3f} | {om:.3f} | {paper:.2f} "
                         f"| {epochs} | {seconds / 60:.1f} min |")
        plot_curves({f"gain {r[0]:g}": r[-1]["history"] for r in rows},
                    images / "training-ltspice.png")
        lines += ["", "![training curves](img/training-ltspice.png)", ""]

    for name in sorted(p.name for p in MODELS.iterdir() if p.name.startswith("circuit")):
        rows = circuit_rows(name, data_root)
        if not rows:
            continue
        hidden = rows[0][-1]["hidden_size"]
        rate = rows[0][-1]["sample_rate"]
        lines += [f"## `{name}`: GRU-{hidden} trained on the circuit gain stage at "
                  f"{rate / 1000:g} kHz", "",
                  "ESR in % against klon's circuit gain stage (1N34A diodes): on the reference "
                  "DI clips the model never trained on (pooled and mean per clip), on a "
                  "generated 4 s riff (`klon.dsp.synth.guitar_riff`, not in any training set), and "
                  "on the whole validation split (held-out DI clips and generated playing).", "",
                  "| gain | held-out DI clips | pooled | mean | unseen riff | validation split "
                  "| epochs | training time |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for g, n, p, m, riff, val, epochs, seconds, _ in rows:
            lines.append(f"| {g:g} | {n} | **{p:.3f}** | {m:.3f} | {riff:.3f} | {val:.3f} | "
                         f"{epochs} | {seconds / 60:.1f} min |")
        plot_curves({f"gain {r[0]:g}": r[-1]["history"] for r in rows},
                    images / f"training-{name}.png")
        lines += ["", f"![training curves](img/training-{name}.png)", ""]

    text = "\n".join(lines) + "\n"
    print(text)
    if rewrite_after(args.out, "<!-- tables -->", text):
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
