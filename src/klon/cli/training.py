"""The neural model's commands: `klon dataset`, `klon train`, `klon plot`.

Parsers are built without importing torch; the handlers import klon.train (which needs torch)
only when they run.
"""
import argparse
import sys
from pathlib import Path

from klon.core.errors import KlonError

GAINS = (0.0, 0.25, 0.5, 0.75, 1.0)


def _gains(text):
    if text == "all":
        return GAINS
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise KlonError(f"--gain: expected a number in 0..1, a comma list or 'all', got {text!r}") \
            from None
    for v in values:
        if not 0.0 <= v <= 1.0:
            raise KlonError(f"--gain {v:g} is outside 0..1")
    return values


def model_file_name(gain: float) -> str:
    """gain_50.json for Gain 0.5: the names of a model set's files."""
    return f"gain_{round(100 * gain)}.json"


def add_parsers(commands) -> None:
    d = commands.add_parser("dataset", help="render training targets from the circuit model's "
                            "gain stage for any input audio")
    d.add_argument("inputs", nargs="*", help="audio files or folders of them (volts: full scale "
                   "= 1 V at the gain stage input)")
    d.add_argument("--out", required=True, help="new folder to write (input/, target/, "
                   "dataset.json; with several gains one gain_<percent>/ folder each)")
    d.add_argument("--gain", default="0.5", help="Gain knob 0..1, a comma list, or 'all' "
                   "(0, .25, .5, .75, 1); default 0.5")
    d.add_argument("--diode", default="1n34a", choices=["1n34a", "mbrb2545ct"])
    d.add_argument("--sample-rate", type=int, default=None,
                   help="resample the inputs to this rate (default: theirs)")
    d.add_argument("--input-gain-db", type=float, default=0.0,
                   help="scale the inputs by this many dB before rendering")
    d.add_argument("--synth", type=float, default=0.0, metavar="SECONDS",
                   help="also render this many seconds of generated guitar playing")
    d.add_argument("--seed", type=int, default=0, help="seed of the generated playing")

    t = commands.add_parser("train", help="train a neural gain stage (needs torch)")
    t.add_argument("data", nargs="?", help="training data folder: DataIn/ + Data<percent>/ "
                   "(the reference data), a `klon dataset` folder, or input/ + target/")
    t.add_argument("--input", help="one long input recording (instead of DATA)")
    t.add_argument("--target", help="its target recording (same length and rate)")
    t.add_argument("--gain", default=None, help="Gain setting to train (0..1), a comma list, "
                   "or 'all' (one model each; --out is then a folder)")
    t.add_argument("--out", required=True, help="model file (.json), or a folder with several "
                   "gains (gain_<percent>.json inside)")
    t.add_argument("--hidden", type=int, default=8, help="recurrent units (default 8)")
    t.add_argument("--cell", default="gru", choices=["gru", "lstm"])
    t.add_argument("--epochs", type=int, default=1000, help="at most this many (default 1000)")
    t.add_argument("--minutes", type=float, default=None, help="stop after this much wall time")
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--learning-rate", type=float, default=5e-3)
    t.add_argument("--plateau", type=int, default=15,
                   help="halve the learning rate after this many epochs without a better "
                   "validation ESR")
    t.add_argument("--patience", type=int, default=60,
                   help="stop after this many epochs without a better validation ESR")
    t.add_argument("--tbptt", type=int, default=2048, help="samples per gradient step")
    t.add_argument("--warmup", type=int, default=2048,
                   help="samples run before the scored part without gradients")
    t.add_argument("--pre-emphasis", type=float, default=0.0,
                   help="first-order pre-emphasis coefficient in the loss (e.g. 0.85; default off)")
    t.add_argument("--dc-weight", type=float, default=0.0, help="weight of the loss's DC term")
    t.add_argument("--validation", type=int, default=None,
                   help="clips held out for validation (default 1 in 16)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    t.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint beside the output (<out>.ckpt)")
    t.add_argument("--jobs", type=int, default=1,
                   help="train this many gains at once (one core each)")

    p = commands.add_parser("plot", help="a model's figures: target vs prediction in time, "
                            "their spectra, and its training curves")
    p.add_argument("model", help="model file (.json)")
    p.add_argument("--data", default=None, help="data to draw (default: the reference clips, "
                   "at the model's gain)")
    p.add_argument("--clip", default=None, help="which clip (name; default: the first "
                   "validation clip)")
    p.add_argument("--out", default="out/plots", help="output folder (default out/plots)")


def dataset(args: argparse.Namespace) -> None:
    from klon.train.dataset import render
    gains = _gains(args.gain)
    out = Path(args.out)
    for gain in gains:
        folder = out if len(gains) == 1 else out / f"gain_{round(100 * gain)}"
        print(f"gain {gain:g} -> {folder}", file=sys.stderr)
        render(args.inputs, folder, gain, args.diode, args.sample_rate, args.input_gain_db,
               args.synth, args.seed, log=sys.stderr)


def _config(args):
    from klon.train.trainer import TrainConfig
    return TrainConfig(hidden=args.hidden, cell=args.cell, epochs=args.epochs,
                       batch_size=args.batch_size, learning_rate=args.learning_rate,
                       plateau=args.plateau, patience=args.patience, tbptt=args.tbptt,
                       warmup=args.warmup,
                       pre_emphasis=args.pre_emphasis, dc_weight=args.dc_weight,
                       validation=args.validation, seed=args.seed, minutes=args.minutes,
                       device=args.device)


def _load_data(args, gain):
    from klon.train import data
    if args.input or args.target:
        if not (args.input and args.target) or args.data:
            raise KlonError("give either DATA, or both --input and --target")
        loaded = data.load_pair(args.input, args.target)
        loaded.gain = gain
        return loaded
    if not args.data:
        raise KlonError("no training data: give a DATA folder, or --input and --target")
    return data.load(args.data, gain)


def train_one(args: argparse.Namespace, gain: float | None, out: Path, label: str = "") -> dict:
    """Train one model and write it (with its checkpoint beside it); returns its metadata."""
    from klon.train import export
    from klon.train.trainer import Trainer
    loaded = _load_data(args, gain)
    for warning in loaded.warnings:
        print(f"klon: warning: {label}{warning}", file=sys.stderr)
    checkpoint = f"{out}.ckpt"
    trainer = Trainer(loaded, _config(args), checkpoint=checkpoint, label=label)
    if args.resume:
        trainer.resume(checkpoint)
    print(f"{label}training on {loaded.source}: {len(trainer.train_index)} clips, "
          f"{len(trainer.validation_index)} for validation, {loaded.sample_rate} Hz",
          file=sys.stderr)
    trainer.run()
    metadata = trainer.metadata()
    export.save(out, trainer.model, metadata)
    print(f"{label}wrote {out}: validation ESR {100 * metadata['validation_esr']:.3f} % "
          f"(mean per clip {100 * metadata['validation_esr_mean']:.3f} %), "
          f"{metadata['epochs']} epochs in {metadata['training_seconds']:.0f} s", file=sys.stderr)
    return metadata


def _train_job(job):
    args, gain, out = job
    import numba
    import torch
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    return train_one(args, gain, out, label=f"[gain {gain:g}] ")


def train(args: argparse.Namespace) -> None:
    import klon.train  # noqa: F401  (a clear error when torch is missing)
    gains = _gains(args.gain) if args.gain is not None else (None,)
    if len(gains) == 1:
        out = Path(args.out)
        if out.suffix.lower() != ".json":
            if gains[0] is None:
                raise KlonError("--out: name the model file (.json), or give --gain")
            out = out / model_file_name(gains[0])
        out.parent.mkdir(parents=True, exist_ok=True)
        train_one(args, gains[0], out)
        return
    folder = Path(args.out)
    if folder.suffix.lower() == ".json":
        raise KlonError("several gains make several models: --out must be a folder")
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(args, g, folder / model_file_name(g)) for g in gains]
    if args.jobs <= 1:
        for job in jobs:
            train_one(job[0], job[1], job[2], label=f"[gain {job[1]:g}] ")
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(max_workers=args.jobs,
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        for _ in pool.map(_train_job, jobs):
            pass


def plot(args: argparse.Namespace) -> None:
    from klon.train.plots import plot_model
    for path in plot_model(args.model, args.data, args.clip, args.out):
        print(f"wrote {path}", file=sys.stderr)


HANDLERS = {"dataset": dataset, "train": train, "plot": plot}
