"""The `klon` command: thin argument handling over the library.

Every problem the user can fix ends as one line on stderr and exit status 2, with no traceback
and no partial output file.
"""
import argparse
import os
import sys

from klon.cli import export
from klon.cli import live
from klon.cli import training
from klon.core.errors import KlonError


def _knob(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _parser():
    parser = argparse.ArgumentParser(prog="klon", description="The Klon Centaur overdrive, "
                                     "modelled as a circuit and verified against SPICE.")
    commands = parser.add_subparsers(dest="command", required=True)

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

    v = commands.add_parser("verify", help="compare the circuit model with ngspice, stage by stage")
    v.add_argument("--quick", action="store_true", help="short clips and fewer settings")
    v.add_argument("--opamp", default="ideal", choices=["ideal", "tl072"],
                   help="op-amp model in the SPICE netlists (default ideal)")
    v.add_argument("--data", default=None,
                   help="folder holding klon-ltspice/DataIn (default: ../shared/data, $KLON_DATA)")
    v.add_argument("--out", default=None, help="also write the table as Markdown to this file")

    d = commands.add_parser("demo", help="a synthesized guitar riff through the pedal: WAVs and a plot")
    d.add_argument("--out", default="out/demo", help="output folder (default out/demo)")

    b = commands.add_parser("bench", help="compute time per second of audio by engine and block "
                            "size, beside the seed's C++ numbers")
    b.add_argument("--seconds", type=float, default=10.0,
                   help="seconds of white noise per run (default 10: a few minutes in all on 2 "
                        "cores; the seed used 100)")
    b.add_argument("--blocks", default=None,
                   help="block sizes, a comma list (default 8,16,...,4096, the seed's)")
    b.add_argument("--engines", default=None,
                   help="comma list of circuit, neural (the whole pedals), gru (one GRU-8 model "
                        "alone), torch-gru (torch.nn.GRU(1, 8) + Linear; skipped without torch); "
                        "default all four")
    b.add_argument("--models", default=None, metavar="NAME|DIR",
                   help="model set of the neural and gru engines (default: the neural engine's "
                        "default, else the shipped 'ltspice')")
    b.add_argument("--sample-rate", type=int, default=44_100, help="(default 44100)")
    b.add_argument("--channels", type=int, default=2, help="(default 2)")
    b.add_argument("--repeats", type=int, default=3, help="runs per engine and block size; the "
                   "median is reported, min and max beside it (default 3)")
    b.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                   help="wall: time.perf_counter (default); cpu: the process's CPU time, steadier "
                        "on a machine busy with other work")
    b.add_argument("--out", default="out/bench",
                   help="folder for bench.csv, bench.md, bench.json, bench.png (default out/bench)")
    b.add_argument("--json", action="store_true",
                   help="print the results as one JSON list on stdout (tables go to stderr)")
    training.add_parsers(commands)
    live.add_parsers(commands)
    export.add_parsers(commands)
    return parser


def _process(args):
    import soundfile as sf

    from klon.core import audio
    from klon.pedal import Centaur, GainStage
    from klon.pedal.stages import check_knob

    for name in ("gain", "treble", "level"):
        check_knob(name, getattr(args, name))
    if args.engine == "circuit" and (args.models or args.model):
        raise KlonError("--models and --model choose the neural engine's models: add "
                        "--engine neural")
    x, sample_rate = audio.read(args.input)
    if args.stage == "gain" and args.engine == "neural":
        from klon.neural.gain_stage import check_circuit_options, neural_gain_stage
        check_circuit_options(args.diode, args.oversampling)
        processor = neural_gain_stage(sample_rate, args.gain, args.models, args.model)
    elif args.stage == "gain":
        from klon.pedal.centaur import check_sample_rate
        processor = GainStage(check_sample_rate(sample_rate), args.gain, args.diode, args.oversampling)
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


def _verify(args):
    from klon.tools.verify import run_verification
    run_verification(quick=args.quick, opamp=args.opamp, data=args.data, markdown_path=args.out)


def _demo(args):
    from klon.tools.demo import run_demo
    run_demo(args.out)


def _bench(args):
    from klon.tools.bench import main as run_bench
    run_bench(args)


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        handlers = {"process": _process, "verify": _verify, "demo": _demo, "bench": _bench,
                    **training.HANDLERS, **live.HANDLERS,
                    **export.HANDLERS}
        handlers[args.command](args)
    except KlonError as exc:
        print(f"klon: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("klon: interrupted", file=sys.stderr)
        return 130
    return 0

