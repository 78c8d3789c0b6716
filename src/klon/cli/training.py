"""The neural model's commands: `klon dataset`, `klon train`, `klon sweep`, `klon plot`.

Argument parsing only: the work is klon.train's (train.dataset.render_gains,
train.jobs.train_gains, train.sweep.run_sweep). Parsers are built without importing torch or
Ray; the handlers import klon.train (which needs torch) and Ray only when they run.
"""
import argparse
import sys

from klon.core.errors import KlonError
from klon.neural.architectures import kinds

GAINS = (0.0, 0.25, 0.5, 0.75, 1.0)
LOCAL = "local"  # `klon dataset --ray` without an address


def _gains(text, moving=False):
    if text == "all":
        return GAINS
    if moving and text == "moving":
        return (text,)
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise KlonError(f"--gain: expected a number in 0..1, a comma list or 'all', got {text!r}") \
            from None
    for v in values:
        if not 0.0 <= v <= 1.0:
            raise KlonError(f"--gain {v:g} is outside 0..1")
    return values


def add_parsers(commands) -> None:
    d = commands.add_parser("dataset", help="render training targets from the circuit model's "
                            "gain stage for any input audio")
    d.add_argument("inputs", nargs="*", help="audio files or folders of them (volts: full scale "
                   "= 1 V at the gain stage input)")
    d.add_argument("--out", required=True, help="new folder to write (input/, target/, "
                   "dataset.json; with several gains one gain_<percent>/ folder each)")
    d.add_argument("--gain", default="0.5", help="Gain knob 0..1, a comma list, 'all' "
                   "(0, .25, .5, .75, 1), or 'moving': every clip along its own Gain path, "
                   "the Gain a second input channel (for a Gain-conditioned model)")
    d.add_argument("--takes", type=int, default=1, help="with --gain moving: Gain paths "
                   "per clip")
    d.add_argument("--ends", type=float, default=None, metavar="SHARE",
                   help="with --gain moving: the share of the paths' settings at exactly 0 or "
                   "1, the knob's ends (default 0.1)")
    d.add_argument("--diode", default="1n34a", choices=["1n34a", "mbrb2545ct"],
                   help="the clipping diodes of the circuit that renders the targets")
    d.add_argument("--sample-rate", type=int, default=None,
                   help="resample the inputs to this rate (default: theirs)")
    d.add_argument("--input-gain-db", type=float, default=0.0,
                   help="scale the inputs by this many dB before rendering")
    d.add_argument("--synth", type=float, default=0.0, metavar="SECONDS",
                   help="also render this many seconds of generated guitar playing")
    d.add_argument("--tones", type=float, default=0.0, metavar="SECONDS",
                   help="also render this many seconds of sine tones (1 s each, 100 Hz..10 kHz, "
                   "30 mV..1.5 V: what aliasing shows on most)")
    d.add_argument("--seed", type=int, default=0, help="seed of the generated playing, the "
                   "tones and the Gain paths")
    d.add_argument("--band-limited", action="store_true",
                   help="near alias-free targets: the circuit at 4x the rate with 4x "
                   "oversampling, low-passed back to the rate (16 times the rendering time)")
    d.add_argument("--oversampling", type=int, default=None, choices=[1, 2, 4],
                   help="the circuit's oversampling for the targets (default: the engine's for "
                   "the rate; 4 renders them with less aliasing, in twice the time)")
    d.add_argument("--ray", nargs="?", const=LOCAL, default=None, metavar="ADDRESS",
                   help="render the clips as parallel tasks on Ray (needs the scale extra): a "
                   "local Ray on this machine's cores, or with an ADDRESS ('auto', "
                   "'ray://HOST:PORT') a cluster (the inputs and --out on a filesystem every "
                   "node sees)")
    d.add_argument("--cpus", type=int, default=None,
                   help="with --ray: cores of the local Ray (default: all of them)")

    t = commands.add_parser("train", help="train a neural gain stage (needs torch)")
    t.add_argument("data", nargs="?", help="training data folder: DataIn/ + Data<percent>/ "
                   "(the reference data), a `klon dataset` folder, or input/ + target/")
    t.add_argument("--input", help="one long input recording (instead of DATA)")
    t.add_argument("--target", help="its target recording (same length and rate)")
    t.add_argument("--gain", default=None, help="Gain setting to train (0..1), a comma list, "
                   "or 'all' (one model each; --out is then a folder) (default: the data's own; "
                   "an --input/--target pair has none: its model plays the same at every Gain)")
    t.add_argument("--out", required=True, help="model file (.json), or a folder with several "
                   "gains (gain_<percent>.json inside)")
    t.add_argument("--force", action="store_true",
                   help="replace an existing model file and its checkpoint (<out>.ckpt); "
                        "without it they are never overwritten")
    t.add_argument("--hidden", type=int, default=8, help="recurrent units")
    t.add_argument("--cell", default="gru", choices=kinds(), help="recurrent layer")
    t.add_argument("--epochs", type=int, default=1000, help="at most this many")
    t.add_argument("--minutes", type=float, default=None,
                   help="stop after this much wall time (default: no limit)")
    t.add_argument("--batch-size", type=int, default=16, help="clips per gradient step")
    t.add_argument("--learning-rate", type=float, default=5e-3, help="Adam's, at the start")
    t.add_argument("--plateau", type=int, default=15,
                   help="halve the learning rate after this many epochs without a better "
                   "validation ESR")
    t.add_argument("--patience", type=int, default=60,
                   help="stop after this many epochs without a better validation ESR")
    t.add_argument("--schedule", default="plateau", choices=["plateau", "cosine"],
                   help="learning rate: halve on plateaus, or fall along a cosine to the end of "
                   "the run (--epochs, or --minutes if that ends it first)")
    t.add_argument("--loss", default="pooled", choices=["pooled", "clip"],
                   help="pooled: one ESR over each minibatch (loud clips weigh most); clip: the "
                   "mean of the clips' own ESRs (each clip, each Gain setting, weighs the same)")
    t.add_argument("--tbptt", type=int, default=2048, help="samples per gradient step")
    t.add_argument("--warmup", type=int, default=2048,
                   help="samples run before the scored part without gradients")
    t.add_argument("--zero-start", type=int, default=0, metavar="SAMPLES",
                   help="also score this many samples of silence from a zero state in each "
                   "minibatch (so the model starts quietly in hosts that start it at zero)")
    t.add_argument("--pre-emphasis", type=float, default=0.0,
                   help="first-order pre-emphasis coefficient in the loss, e.g. 0.85 (0: off)")
    t.add_argument("--dc-weight", type=float, default=0.0, help="weight of the loss's DC term")
    t.add_argument("--validation", type=int, default=None,
                   help="clips held out for validation (default: 1 in 16)")
    t.add_argument("--seed", type=int, default=0, help="seed of the weights and the clip order")
    t.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto: CUDA when torch sees a GPU, else the CPU")
    t.add_argument("--init", default=None, metavar="MODEL",
                   help="start from this model's weights (fine-tuning): a model file, or a "
                   "folder of gain_<percent>.json files, one per --gain; same cell, size, inputs "
                   "and sample rate")
    t.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint beside the output (<out>.ckpt), "
                        "replacing the model file")
    t.add_argument("--jobs", type=int, default=1,
                   help="train this many gains at once (one core each)")

    w = commands.add_parser("sweep", help="train many models on Ray Tune (architectures, sizes, "
                            "knob inputs, learning rates, seeds, data) and rank them by "
                            "validation ESR against cost (needs torch and the scale extra)")
    w.add_argument("config", help="the sweep's TOML file (docs/sweeps.md)")
    w.add_argument("--out", required=True, help="folder for the sweep: its data renders, Ray "
                   "Tune's trials and checkpoints, models/, best.json and leaderboard.*; a "
                   "folder holding this sweep unfinished resumes it")
    w.add_argument("--address", default=None, help="a Ray cluster: 'auto' (the one this "
                   "machine belongs to) or 'ray://HOST:PORT' (default: a local Ray on this "
                   "machine's cores)")
    w.add_argument("--cpus", type=int, default=None,
                   help="cores of the local Ray (default: all of them)")

    p = commands.add_parser("plot", help="a model's figures: target vs prediction in time, "
                            "their spectra, and its training curves")
    p.add_argument("model", help="model file (.json)")
    p.add_argument("--data", default=None, help="data to draw (default: the data the model was "
                   "trained on, as its file records, else the reference clips at its Gain)")
    p.add_argument("--clip", default=None, help="which clip (name; default: the first "
                   "validation clip)")
    p.add_argument("--out", default="out/plots", help="output folder")


def dataset(args: argparse.Namespace) -> None:
    import contextlib

    from klon.train.dataset import render_gains
    if args.cpus is not None and args.ray is None:
        raise KlonError("--cpus sizes the local Ray of --ray: give --ray too")
    if args.ray is None:
        cluster = contextlib.nullcontext()
    else:
        from klon.core.cluster import connected
        cluster = connected(None if args.ray == LOCAL else args.ray, args.cpus)
    ends = {} if args.ends is None else {"ends": args.ends}
    with cluster:
        render_gains(args.inputs, args.out, _gains(args.gain, moving=True), log=sys.stderr,
                     diode=args.diode, sample_rate=args.sample_rate,
                     input_gain_db=args.input_gain_db, synth_seconds=args.synth,
                     seed=args.seed, takes=args.takes, tone_seconds=args.tones, **ends,
                     oversampling=args.oversampling, band_limited=args.band_limited,
                     use_ray=args.ray is not None)


def _config(args):
    from klon.train.trainer import TrainConfig
    return TrainConfig(hidden=args.hidden, cell=args.cell, epochs=args.epochs,
                       batch_size=args.batch_size, learning_rate=args.learning_rate,
                       plateau=args.plateau, patience=args.patience, tbptt=args.tbptt,
                       warmup=args.warmup, zero_start=args.zero_start, schedule=args.schedule,
                       loss=args.loss,
                       pre_emphasis=args.pre_emphasis, dc_weight=args.dc_weight,
                       validation=args.validation, seed=args.seed, minutes=args.minutes,
                       device=args.device, init=args.init)


def _source(args):
    """DATA, or the (--input, --target) pair."""
    if args.input or args.target:
        if not (args.input and args.target) or args.data:
            raise KlonError("give either DATA, or both --input and --target")
        return args.input, args.target
    if not args.data:
        raise KlonError("no training data: give a DATA folder, or --input and --target")
    return args.data


def train(args: argparse.Namespace) -> None:
    from klon.train.jobs import check_outputs, initial_model, model_paths, train_gains
    gains = _gains(args.gain) if args.gain is not None else (None,)
    models = model_paths(args.out, gains)
    source = _source(args)
    for gain, _ in models:
        initial_model(args.init, gain)
    # before any data is read or any epoch run: an existing model is not replaced by accident
    check_outputs(models, force=args.force, resume=args.resume)
    train_gains(source, models, _config(args), jobs=args.jobs, resume=args.resume,
                force=args.force)


def sweep(args: argparse.Namespace) -> None:
    from klon.core.cluster import require_ray
    require_ray()  # before torch is imported or anything is read
    from klon.train import sweep_config
    from klon.train.sweep import run_sweep
    run_sweep(sweep_config.read(args.config), args.out, args.address, args.cpus)


def plot(args: argparse.Namespace) -> None:
    from klon.train.plots import plot_model
    for path in plot_model(args.model, args.data, args.clip, args.out):
        print(f"wrote {path}", file=sys.stderr)


HANDLERS = {"dataset": dataset, "train": train, "sweep": sweep, "plot": plot}
