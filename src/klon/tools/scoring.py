"""The published models, scored on the reference clips the way the original work scored them.

    klon score [--data DIR] [--models DIR] [--clips 400]

For each Gain G, centaur_<G>.json runs over klon-ltspice/DataIn/sample0..N-1.wav (x = int16 /
2^15) against Data<G>/sampleN.wav (y = 2 int16 / 2^15), from rest, scored on samples 14000.. of
each clip (before that the targets hold the simulator's power-up): ESR = sum((y - y_model)^2) /
sum(y^2), as the mean of the per-clip ESRs and over all clips pooled, once with the compiled
engine (float32) and once with the float64 reference maths.
"""
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from klon.core.errors import KlonError
from klon.core.metrics import clip_esr
from klon.neural.model import PREROLL_SAMPLES, RecurrentModel
from klon.neural.reference import reference_output

SCORED_FROM = 14_000
GAINS = (0, 25, 50, 75, 100)
PUBLISHED = {0: (0.50, 0.70), 25: (0.51, 0.57), 50: (0.57, 0.50), 75: (0.70, 0.67),
             100: (1.63, 1.72)}  # ESR % train / validation, arXiv:2009.02833


def read_clips(folder: str | os.PathLike, count: int) -> np.ndarray:
    """clips x frames int16 WAVs -> float64 array of raw int16 values."""
    clips = []
    for i in range(count):
        path = Path(folder) / f"sample{i}.wav"
        if not path.is_file():
            raise KlonError(f"missing reference clip {path}")
        data, _ = sf.read(str(path), dtype="int16")
        clips.append(data.astype(np.float64))
    return np.stack(clips)


def esr(target: np.ndarray, estimate: np.ndarray) -> tuple[float, float]:
    """(mean of per-clip ESRs, pooled ESR) over the scored part of clips x frames arrays."""
    per_clip, pooled = clip_esr(estimate[:, SCORED_FROM:], target[:, SCORED_FROM:])
    return float(np.mean(per_clip)), pooled


def score(data: str | os.PathLike, models: str | os.PathLike, clips: int = 400) -> list[tuple]:
    """One row per Gain: (gain %, engine (mean, pooled), float64 (mean, pooled), largest
    |engine - float64| sample difference)."""
    if clips < 1:
        raise KlonError(f"--clips must be at least 1, got {clips}")
    data, models = Path(data), Path(models)
    x = read_clips(data / "klon-ltspice" / "DataIn", clips) / 2 ** 15
    rows = []
    for gain in GAINS:
        y = 2 * read_clips(data / "klon-ltspice" / f"Data{gain}", clips) / 2 ** 15
        model = RecurrentModel(models / f"centaur_{gain}.json")
        engine = model(x.astype(np.float32)).astype(np.float64)  # one channel per clip
        reference = reference_output(model.spec, x, preroll=PREROLL_SAMPLES)
        rows.append((gain, esr(y, engine), esr(y, reference),
                     float(np.max(np.abs(engine - reference)))))
    return rows


def markdown(rows: list[tuple], clips: int) -> str:
    """The rows as a Markdown table beside the published ESRs."""
    lines = [("| Gain | published train / val ESR % | engine: mean per clip % | engine: pooled % "
              "| float64: mean per clip % | float64: pooled % | largest sample difference |"),
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for gain, (e_mean, e_pool), (r_mean, r_pool), diff in rows:
        train, val = PUBLISHED[gain]
        lines.append(f"| {gain / 100:.2f} | {train:.2f} / {val:.2f} | {100 * e_mean:.4f} | "
                     f"{100 * e_pool:.4f} | {100 * r_mean:.4f} | {100 * r_pool:.4f} | "
                     f"{diff:.1e} |")
    lines.append(f"\n{clips} clips, samples {SCORED_FROM}.. of each.")
    return "\n".join(lines)
