"""`klon train`'s work: one model per Gain setting, each written with its checkpoint beside it,
one after another or in parallel processes.

Parallel jobs run in spawned processes, each on one core (one torch and one numba thread), so
that N jobs use N cores without their thread pools competing. Every job reports on stderr, its
lines labelled with its Gain when there are several.
"""
import multiprocessing
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

from klon.core.errors import KlonError
from klon.train import data as datasets
from klon.train import export
from klon.train.data import PairedAudio
from klon.train.trainer import TrainConfig, Trainer

# a folder `data.load` reads, or (input recording, target recording)
DataSource = str | os.PathLike | tuple[str | os.PathLike, str | os.PathLike]


def model_file_name(gain: float) -> str:
    """gain_50.json for Gain 0.5: the names of a model set's files."""
    return f"gain_{round(100 * gain)}.json"


def model_paths(out: str | os.PathLike,
                gains: Sequence[float | None]) -> list[tuple[float | None, Path]]:
    """(gain, model file) for each of `gains`: one gain writes `out` itself when it names a
    .json file, else the set's file in the folder `out`; several gains need a folder. A gain
    of None means the data's own (it cannot name a file)."""
    out = Path(out)
    if len(gains) == 1:
        if out.suffix.lower() == ".json":
            return [(gains[0], out)]
        if gains[0] is None:
            raise KlonError("--out: name the model file (.json), or give --gain")
        return [(gains[0], out / model_file_name(gains[0]))]
    if out.suffix.lower() == ".json":
        raise KlonError("several gains make several models: --out must be a folder")
    return [(gain, out / model_file_name(gain)) for gain in gains]


def check_outputs(models: Sequence[tuple[float | None, Path]], force: bool = False,
                  resume: bool = False) -> None:
    """Refuse, before any training, what would replace a model or its checkpoint by accident:
    an existing model file or <model>.ckpt unless `force` (or `resume`, which continues that
    checkpoint and replaces the model it made), a folder where the model file goes, or a folder
    that cannot be written."""
    for _, out in models:
        out = Path(out)
        checkpoint = Path(f"{out}.ckpt")
        for path in (out, checkpoint):
            if path.is_dir():
                raise KlonError(f"--out: '{path}' is a folder: name the model file (.json)")
        if not (force or resume):
            for path, what in ((out, "a model"), (checkpoint, "a training checkpoint")):
                if path.exists():
                    raise KlonError(f"'{path}' already exists ({what}): give --force to replace "
                                    f"it, --resume to continue that training, or another --out")
        folder = out.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent  # the nearest folder that exists: the rest will be made
        if not folder.is_dir():
            raise KlonError(f"cannot write '{out}': '{folder}' is not a folder")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise KlonError(f"cannot write '{out}': folder '{folder}' is not writable")


def data_origin(source: DataSource) -> dict:
    """Where the training data lies, as the model file records it (`klon plot` draws from it):
    {"folder": path} or {"input": path, "target": path}, absolute."""
    if isinstance(source, tuple):
        return {"input": os.path.abspath(source[0]), "target": os.path.abspath(source[1])}
    return {"folder": os.path.abspath(source)}


def load_data(source: DataSource, gain: float | None) -> PairedAudio:
    """The training data at `gain` from a folder, or from one input/target pair of
    recordings (which then stands for that gain)."""
    if isinstance(source, tuple):
        loaded = datasets.load_pair(*source)
        loaded.gain = gain
        return loaded
    return datasets.load(source, gain)


def initial_model(init: str | os.PathLike | None, gain: float | None) -> str | None:
    """The model file a run at `gain` starts from: `init` itself, or the set's file for that
    gain when `init` is a folder of them."""
    if init is None:
        return None
    if not Path(init).is_dir():
        if not Path(init).exists():
            raise KlonError(f"--init: no model at '{init}'")
        return os.fspath(init)
    if gain is None:
        raise KlonError(f"--init: '{init}' is a folder: name the model file, or give --gain")
    path = Path(init) / model_file_name(gain)
    if not path.exists():
        raise KlonError(f"--init: no model for gain {gain:g} in '{init}' (looked for {path.name})")
    return os.fspath(path)


def train_model(source: DataSource, gain: float | None, out: str | os.PathLike,
                config: TrainConfig, resume: bool = False, label: str = "") -> dict:
    """Train one model and write it (with its checkpoint, <out>.ckpt, beside it); returns its
    metadata. `resume` continues from that checkpoint; `label` prefixes every line on stderr."""
    loaded = load_data(source, gain)
    config = replace(config, init=initial_model(config.init, gain))
    for warning in loaded.warnings:
        print(f"klon: warning: {label}{warning}", file=sys.stderr)
    checkpoint = f"{out}.ckpt"
    trainer = Trainer(loaded, config, checkpoint=checkpoint, label=label)
    if resume:
        trainer.resume(checkpoint)
    print(f"{label}training on {loaded.source}: {len(trainer.train_index)} clips, "
          f"{len(trainer.validation_index)} for validation, {loaded.sample_rate} Hz",
          file=sys.stderr)
    trainer.run()
    metadata = {**trainer.metadata(), "training_data": data_origin(source)}
    export.save(out, trainer.model, metadata)
    print(f"{label}wrote {out}: validation ESR {100 * metadata['validation_esr']:.3f} % "
          f"(mean per clip {100 * metadata['validation_esr_mean']:.3f} %), "
          f"{metadata['epochs']} epochs in {metadata['training_seconds']:.0f} s", file=sys.stderr)
    return metadata


def _label(gain: float) -> str:
    return f"[gain {gain:g}] "


def _train_in_worker(job: tuple) -> dict:
    """One job in a spawned worker, on one core."""
    import numba
    import torch
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    source, gain, out, config, resume = job
    return train_model(source, gain, out, config, resume, label=_label(gain))


def train_gains(source: DataSource, models: Sequence[tuple[float | None, Path]],
                config: TrainConfig, jobs: int = 1, resume: bool = False,
                force: bool = False) -> list[dict]:
    """Train and write each (gain, model file) of `models` (see model_paths), `jobs` at a time
    in processes of their own when there are several; returns their metadata in order. With
    several models every line on stderr names its gain. An existing model file or checkpoint is
    replaced only with `force` (or `resume`, see check_outputs)."""
    check_outputs(models, force, resume)
    for _, out in models:
        try:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise KlonError(f"cannot make the folder of '{out}': {error.strerror or error}") \
                from None
    if len(models) == 1:
        gain, out = models[0]
        return [train_model(source, gain, out, config, resume)]
    if jobs <= 1:
        return [train_model(source, gain, out, config, resume, label=_label(gain))
                for gain, out in models]
    work = [(source, gain, out, config, resume) for gain, out in models]
    with ProcessPoolExecutor(max_workers=jobs,
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(_train_in_worker, work))
