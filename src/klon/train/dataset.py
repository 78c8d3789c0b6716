"""`klon dataset`: training pairs whose targets are the circuit model's gain stage.

Any input audio (DI recordings, the reference clips, generated playing) goes through
klon.pedal.GainStage at the chosen Gain, diode and sample rate; the folder that comes out
(input/, target/, dataset.json) is what `klon train` reads. Inputs are volts (full scale 1.0 =
1 V at the gain stage's input, the reference data's convention).
"""
import datetime
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from klon.core import audio
from klon.core.errors import KlonError
from klon.core.files import atomic_write
from klon.dsp.synth import guitar_phrases
from klon.pedal import GainStage


def input_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Audio files named directly or found (non-recursively) in named folders, in order."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            files += audio.audio_files(path)
        elif path.exists():
            files.append(path)
        else:
            raise KlonError(f"cannot read '{path}': no such file or folder")
    return files


def synthetic_inputs(seconds: float, sample_rate: int, seed: int = 0,
                     clip_seconds: float = 4.0) -> list[tuple[str, np.ndarray]]:
    """Generated playing at DI levels: clips of `clip_seconds` whose RMS is log-uniform between
    10 and 300 mV (the reference DI clips span 13..250 mV), peaks capped at 2 V."""
    rng = np.random.default_rng(seed)
    clips = []
    for i in range(int(np.ceil(seconds / clip_seconds))):
        x = guitar_phrases(sample_rate, clip_seconds, 1.0, seed=int(rng.integers(1 << 30)))
        rms = np.exp(rng.uniform(np.log(0.01), np.log(0.3)))
        x *= rms / max(float(np.sqrt(np.mean(x ** 2))), 1e-9)
        peak = float(np.max(np.abs(x)))
        if peak > 2.0:
            x *= 2.0 / peak
        clips.append((f"synth{i:03d}", x.astype(np.float32)))
    return clips


def render(inputs: Iterable[str | os.PathLike], out_dir: str | os.PathLike, gain: float,
           diode: str = "1n34a", sample_rate: int | None = None, input_gain_db: float = 0.0,
           synth_seconds: float = 0.0, seed: int = 0, log=None) -> Path:
    """Write out_dir/input/*.wav, out_dir/target/*.wav (float32 volts) and dataset.json.
    `inputs` are audio files or folders; `synth_seconds` of generated playing are added."""
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise KlonError(f"'{out}' already exists and is not an empty folder: choose a new "
                        f"output folder (nothing is overwritten)")
    files = input_files(inputs) if inputs else []
    if not files and synth_seconds <= 0:
        raise KlonError("no input audio: name files or folders, or ask for --synth SECONDS")
    clips = []
    for path in files:
        x, rate = audio.read(path)
        if x.shape[0] != 1:
            raise KlonError(f"'{path}' has {x.shape[0]} channels: DI recordings are mono "
                            f"(mix or split it first)")
        rate = int(rate)
        target_rate = int(sample_rate or rate)
        clips.append((path.stem, audio.resample(x[0], rate, target_rate), target_rate))
    rates = {r for _, _, r in clips}
    if len(rates) > 1:
        raise KlonError(f"the inputs have different sample rates ({', '.join(map(str, rates))} "
                        f"Hz): give --sample-rate to resample them all to one")
    rate = rates.pop() if rates else int(sample_rate or 44_100)
    names = [name for name, _, _ in clips]
    if len(set(names)) != len(names):
        raise KlonError("two inputs have the same file name: targets would overwrite each other")
    clips = [(name, x) for name, x, _ in clips]
    if synth_seconds > 0:
        clips += synthetic_inputs(synth_seconds, rate, seed)
    scale = np.float32(10.0 ** (input_gain_db / 20.0))
    stage = GainStage(rate, gain, diode)
    out.mkdir(parents=True, exist_ok=True)
    (out / "input").mkdir()
    (out / "target").mkdir()
    for i, (name, x) in enumerate(clips):
        x = x * scale
        y = stage(x.astype(np.float64).reshape(1, -1))[0]
        audio.write(out / "input" / f"{name}.wav", x, rate)
        audio.write(out / "target" / f"{name}.wav", y.astype(np.float32), rate)
        if log and (i + 1 == len(clips) or (i + 1) % 50 == 0):
            print(f"rendered {i + 1}/{len(clips)} clips", file=log, flush=True)
    manifest = {"format": "klon-dataset", "target": "klon circuit gain stage", "gain": gain,
                "diode": diode, "sample_rate": rate, "input_gain_db": input_gain_db,
                "clips": len(clips), "inputs": [str(p) for p in files],
                "synth_seconds": synth_seconds, "seed": seed,
                "created": datetime.date.today().isoformat()}
    atomic_write(out / "dataset.json", json.dumps(manifest, indent=2) + "\n")
    return out


def render_gains(inputs: Iterable[str | os.PathLike], out_dir: str | os.PathLike,
                 gains: Sequence[float], diode: str = "1n34a", sample_rate: int | None = None,
                 input_gain_db: float = 0.0, synth_seconds: float = 0.0, seed: int = 0,
                 log=None) -> list[Path]:
    """`render` at each of `gains`: into out_dir itself for one gain, else into one
    out_dir/gain_<percent>/ each (the layout `data.load` picks a gain from); returns the
    folders written. The whole dataset is rendered beside out_dir and renamed into place at the
    end, so a failure (or Ctrl-C) leaves no half-written dataset behind."""
    inputs, out = list(inputs), Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise KlonError(f"'{out}' already exists and is not an empty folder: choose a new "
                        f"output folder (nothing is overwritten)")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise KlonError(f"cannot make the folder '{out.parent}': {error.strerror or error}") \
            from None
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise KlonError(f"cannot write '{out}': folder '{out.parent}' is not writable")
    work = out.parent / f".{out.name}.{os.getpid()}.partial"
    names = [None] if len(gains) == 1 else [f"gain_{round(100 * gain)}" for gain in gains]
    try:
        for gain, name in zip(gains, names, strict=True):
            if log:
                print(f"gain {gain:g} -> {out if name is None else out / name}", file=log)
            render(inputs, work if name is None else work / name, gain, diode, sample_rate,
                   input_gain_db, synth_seconds, seed, log=log)
        os.replace(work, out)  # onto a missing or empty folder
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return [out if name is None else out / name for name in names]
