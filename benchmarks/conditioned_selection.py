"""Which conditioned model to ship: each candidate's ESR at the 13 Gains of docs/conditioned.md
on its own validation segments, the worst Gain deciding.

    .venv/bin/python benchmarks/conditioned_selection.py DATASET MODEL.json...

A sweep ranks its trials by pooled validation ESR, in which every segment has its own random
Gain path, so a model weak at one end of the knob can still rank first. The target is per Gain
(issue 14: 1 % at each), so the pick is made the same way, without the held-out DI clips that
report the result: each model's validation segments (the audio channel of DATASET/input, never
trained on, each with its 2048 samples of context) through the circuit gain stage and the model
at each fixed Gain; the model whose worst Gain is lowest is the pick.
"""
import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "src"))

from conditioned import GAINS  # noqa: E402

from klon.core import audio  # noqa: E402
from klon.core.metrics import clip_esr  # noqa: E402
from klon.neural import ModelBank  # noqa: E402
from klon.pedal import GainStage  # noqa: E402
from klon.train.data import CONTEXT, SEGMENT_SECONDS  # noqa: E402

RATE = 44_100
BATCH = 32  # segments per call (klon takes up to 64 channels)


def validation_segments(dataset: Path, names: list[str]) -> np.ndarray:
    """The audio of each validation segment ('clip@start s'), its context in front."""
    length = int(round(SEGMENT_SECONDS * RATE))
    rows = []
    for name in names:
        clip, start = re.fullmatch(r"(.+)@([0-9.]+)s", name).groups()
        x = audio.read(dataset / "input" / f"{clip}.wav")[0][0]
        x = np.concatenate([np.zeros(CONTEXT, np.float32), x, np.zeros(length, np.float32)])
        at = int(round(float(start) * RATE))
        rows.append(x[at:at + CONTEXT + length])
    return np.stack(rows)


def gain_scores(model: Path, x: np.ndarray) -> list[float]:
    """Pooled ESR % of the model against the circuit at each of GAINS."""
    scores = []
    for gain in GAINS:
        y, prediction = [], []
        for start in range(0, len(x), BATCH):
            part = x[start:start + BATCH]
            y.append(GainStage(RATE, gain)(part.astype(np.float64)))
            prediction.append(ModelBank([model], gain)(part))
        _, pooled = clip_esr(np.concatenate(prediction)[:, CONTEXT:],
                             np.concatenate(y)[:, CONTEXT:])
        scores.append(100 * pooled)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset", type=Path, help="the `klon dataset --gain moving` folder")
    parser.add_argument("models", type=Path, nargs="+")
    args = parser.parse_args()
    print("| model | " + " | ".join(f"{g:g}" for g in GAINS) + " | worst |")
    print("|---|" + "---:|" * (len(GAINS) + 1))
    worst = {}
    for model in args.models:
        meta = json.loads(model.read_text())["metadata"]
        scores = gain_scores(model, validation_segments(args.dataset, meta["validation_clips"]))
        worst[model] = max(scores)
        print(f"| {model.name} | " + " | ".join(f"{s:.2f}" for s in scores)
              + f" | {worst[model]:.2f} |")
    print(f"pick: {min(worst, key=worst.get)}")


if __name__ == "__main__":
    main()
