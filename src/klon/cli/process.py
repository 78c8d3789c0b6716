"""`klon process`: an audio file through the pedal (or its gain stage alone)."""
import argparse
import os
import sys

from klon.core.errors import KlonError


def _knob(text: str) -> float:
    """A knob value as a number; the range is the pedal's to check (its message names the
    knob), so argparse only refuses what is not a number."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def add_parsers(commands) -> None:
    p = commands.add_parser("process", help="run an audio file through the pedal")
    p.add_argument("input", help="audio file (anything libsndfile reads)")
    p.add_argument("output", help="where to write the result (float WAV/FLAC/AIFF by extension)")
    p.add_argument("--gain", type=_knob, default=0.5, help="Gain knob, 0..1 (default 0.5)")
    p.add_argument("--treble", type=_knob, default=0.5, help="Treble knob, 0..1 (default 0.5)")
    p.add_argument("--level", type=_knob, default=0.5, help="Level knob, 0..1 (default 0.5)")
    p.add_argument("--engine", default="circuit", choices=["circuit", "neural"],
                   help="circuit: the circuit model; neural: trained models in place of the gain "
                        "stage (44.1 or 48 kHz audio)")
    p.add_argument("--stage", default="full", choices=["full", "gain"],
                   help="full: the whole pedal; gain: the gain stage alone (volts in, volts out)")
    p.add_argument("--models", default=None, metavar="NAME|DIR",
                   help="neural engine: a shipped model set or a folder of model files "
                        "(default: the shipped set for the rate, 'circuit' at 44.1 kHz, "
                        "'circuit-48k' at 48 kHz)")
    p.add_argument("--model", default=None, metavar="FILE.json",
                   help="neural engine: one model file used at every Gain, instead of a set")
    p.add_argument("--diode", default="1n34a", choices=["1n34a", "mbrb2545ct"])
    p.add_argument("--oversampling", type=int, choices=[1, 2, 4], default=None,
                   help="oversampling of the gain stage (default: 2, or 4 below 44.1 kHz)")


def process(args: argparse.Namespace) -> None:
    import soundfile as sf

    from klon.core import audio
    from klon.core.processor import check_knob
    from klon.pedal.centaur import Centaur, make_gain_stage

    for name in ("gain", "treble", "level"):
        check_knob(name, getattr(args, name))
    if args.engine == "circuit" and (args.models or args.model):
        raise KlonError("--models and --model choose the neural engine's models: add "
                        "--engine neural")
    x, sample_rate = audio.read(args.input)
    if args.stage == "gain":
        processor = make_gain_stage(args.engine, sample_rate, args.gain, diode=args.diode,
                                    oversampling=args.oversampling, models=args.models,
                                    model=args.model)
    else:
        processor = Centaur(sample_rate, args.gain, args.treble, args.level, engine=args.engine,
                            diode=args.diode, oversampling=args.oversampling,
                            models=args.models, model=args.model)
    y = processor(x)
    # float where the format holds it (volts beyond +-1 survive), else the format's default
    fmt = os.path.splitext(args.output)[1].lstrip(".").upper()
    subtype = "FLOAT" if sf.check_format(fmt, "FLOAT") else None
    audio.write(args.output, y, sample_rate, subtype=subtype, protect=args.input)
    print(f"wrote {args.output} ({y.shape[-1] / sample_rate:.2f} s, {y.shape[0]} channel(s), "
          f"{int(sample_rate)} Hz)", file=sys.stderr)


HANDLERS = {"process": process}
