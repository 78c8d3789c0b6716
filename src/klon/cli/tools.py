"""`klon verify`, `klon demo`, `klon bench`, `klon aliasing`: the jobs of klon.tools, from the
command line."""
import argparse
import json
import sys

from klon.core.errors import KlonError


def add_parsers(commands) -> None:
    v = commands.add_parser("verify", help="compare the circuit model with ngspice, stage by stage")
    v.add_argument("--quick", action="store_true", help="short clips and fewer settings")
    v.add_argument("--opamp", default="ideal", choices=["ideal", "tl072"],
                   help="op-amp model in the SPICE netlists (default: ideal)")
    v.add_argument("--data", default=None,
                   help="folder holding klon-ltspice/DataIn (default: ../shared/data, $KLON_DATA)")
    v.add_argument("--out", default=None, help="also write the table as Markdown to this file")

    d = commands.add_parser("demo",
                            help="a synthesized guitar riff through the pedal: WAVs and a plot")
    d.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")

    b = commands.add_parser("bench", help="compute time per second of audio by engine and block "
                            "size, beside the seed's C++ numbers")
    b.add_argument("--seconds", type=float, default=10.0,
                   help="seconds of white noise per run (default: 10; a few minutes in all on 2 "
                        "cores; the seed used 100)")
    b.add_argument("--blocks", default=None,
                   help="block sizes, a comma list (default: 8,16,...,4096, the seed's)")
    b.add_argument("--engines", default=None,
                   help="comma list of circuit, neural (the whole pedals), gru (one GRU-8 model "
                        "alone), torch-gru (torch.nn.GRU(1, 8) + Linear; skipped without torch) "
                        "(default: those four), vst3-circuit, vst3-neural (the plugins in "
                        "pedalboard, each engine: give --plugins)")
    b.add_argument("--plugins", default=None, metavar="DIR",
                   help="a `klon export plugin` folder, for the vst3 engines")
    b.add_argument("--models", default=None, metavar="NAME|DIR",
                   help="model set of the neural and gru engines (default: the neural engine's "
                        "default, else the shipped 'ltspice')")
    b.add_argument("--sample-rate", type=int, default=44_100, help="the rate of the runs")
    b.add_argument("--channels", type=int, default=2, help="channels of the runs")
    b.add_argument("--repeats", type=int, default=3, help="runs per engine and block size; the "
                   "median is reported, min and max beside it (default: 3)")
    b.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                   help="wall: time.perf_counter (default); cpu: the process's CPU time, steadier "
                        "on a machine busy with other work")
    b.add_argument("--out", default="out/bench",
                   help="folder for bench.csv, bench.md, bench.json, bench.png")
    b.add_argument("--json", action="store_true",
                   help="print the results as one JSON list on stdout (tables go to stderr)")

    a = commands.add_parser("aliasing", help="how much the pedal aliases: the signal-to-aliasing "
                            "ratio (SAR) of pure tones, by tone")
    a.add_argument("--engine", default="circuit", choices=["circuit", "neural", "reference"],
                   help="what plays the tones; reference: the circuit at 4x the rate with 4x "
                        "oversampling, band-limited and decimated (near alias-free)")
    a.add_argument("--oversampling", type=int, default=None, choices=[1, 2, 4],
                   help="the circuit engine's (default: its own, 2x at 44.1 kHz)")
    a.add_argument("--models", default=None, metavar="NAME|DIR",
                   help="the neural engine's model set (default: its default for the rate)")
    a.add_argument("--gain", type=float, default=0.5)
    a.add_argument("--treble", type=float, default=0.5)
    a.add_argument("--level", type=float, default=0.5)
    a.add_argument("--amplitude", default="0.3",
                   help="peak volts of the tones at the input jack, a comma list for several "
                        "(guitar: 0.1-0.5 V)")
    a.add_argument("--sample-rate", type=int, default=44_100)
    a.add_argument("--tones", default=None,
                   help="tone frequencies in Hz, a comma list, each rounded to the nearest odd "
                        "DFT bin (default: 24 from 200 Hz to 10 kHz or fs/4, whichever is lower)")
    a.add_argument("--quick", action="store_true", help="the tones 1.2, 2, 4 and 8 kHz only")
    a.add_argument("--reference", action="store_true",
                   help="also measure the reference and draw it dashed")
    a.add_argument("--out", default="out/aliasing",
                   help="folder for aliasing.csv, aliasing.json, aliasing.png")


def _list(text: str, name: str, kind=str) -> list:
    """'8,16,64' -> [8, 16, 64] (of `kind`); a KlonError naming the option otherwise."""
    try:
        values = [kind(v.strip()) for v in str(text).split(",") if v.strip()]
    except ValueError:
        what = "whole numbers" if kind is int else "numbers"
        raise KlonError(f"--{name}: expected a comma list of {what}, got {text!r}") from None
    if not values:
        raise KlonError(f"--{name}: empty list")
    return values


def verify(args: argparse.Namespace) -> None:
    from klon.tools.verify import run_verification
    run_verification(quick=args.quick, opamp=args.opamp, data=args.data, markdown_path=args.out)


def demo(args: argparse.Namespace) -> None:
    from klon.tools.demo import run_demo
    run_demo(args.out)


def bench(args: argparse.Namespace) -> None:
    from klon.tools import bench as b
    b.output_folder(args.out)  # a bad folder fails now, not after minutes of timing
    blocks = _list(args.blocks, "blocks", int) if args.blocks is not None else b.BLOCKS
    engines = _list(args.engines, "engines") if args.engines is not None else b.ENGINES
    result = b.run_bench(args.seconds, blocks, engines, args.sample_rate, args.channels,
                         args.repeats, args.models, args.clock, args.plugins)
    paths = b.write_outputs(result, args.out)
    # with --json, stdout holds the JSON alone
    print(b.text_table(result), file=sys.stderr if args.json else sys.stdout)
    for path in paths:
        print(path, file=sys.stderr)
    if args.json:
        print(json.dumps(result["records"]))


def aliasing(args: argparse.Namespace) -> None:
    from klon.tools import aliasing as a
    from klon.tools.bench import output_folder
    amplitudes = _list(args.amplitude, "amplitude", float)
    tones = _list(args.tones, "tones", float) if args.tones is not None else None
    if tones is not None and args.quick:
        raise KlonError("--tones and --quick both choose the tones: give one")
    settings = {"engine": args.engine, "sample_rate": args.sample_rate, "gain": args.gain,
                "treble": args.treble, "level": args.level, "amplitude": amplitudes,
                "tones": tones, "oversampling": args.oversampling, "models": args.models}
    a.check_settings(**settings)  # a bad value or folder fails now, not after the tones
    output_folder(args.out)
    report = a.run_aliasing(**settings, quick=args.quick, reference=args.reference)
    print(a.text_table(report), end="")
    for path in a.write_outputs(report, args.out):
        print(path, file=sys.stderr)


HANDLERS = {"verify": verify, "demo": demo, "bench": bench, "aliasing": aliasing}
