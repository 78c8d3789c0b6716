"""`klon export c`: the neural pedal (and the circuit gain stage) as a portable C99 library.
`klon export plugin`: the pedal, both engines, as LV2, VST3 and CLAP plugins and a JACK program."""
import argparse

from klon.core.errors import KlonError
from klon.export.plugin import FORMATS as PLUGIN_FORMATS
from klon.export.plugin import LAYOUTS as PLUGIN_LAYOUTS


def add_parsers(commands) -> None:
    e = commands.add_parser("export", help="the pedal as portable C99 for microcontrollers, or "
                            "as plugins (LV2, VST3, CLAP, JACK)")
    formats = e.add_subparsers(dest="format", required=True)
    c = formats.add_parser("c", help="a C99 library: klon_pedal.h/.c (the neural pedal: GRU "
                           "bank, linear stages, knobs), and klon_circuit_gain.h/.c (the circuit "
                           "gain stage, for -DKLON_ENGINE_CIRCUIT)",
                           description="Writes klon_pedal.h, klon_pedal.c, klon_circuit_gain.h "
                           "and klon_circuit_gain.c into OUTDIR: no malloc, no globals beyond "
                           "const tables, libm only. See docs/embedded.md.")
    c.add_argument("source", nargs="?", default=None, metavar="MODEL.json|OUTDIR",
                   help="one model file used at every Gain (give OUTDIR after it) (default: "
                        "the model set of --models)")
    c.add_argument("out", nargs="?", default=None, metavar="OUTDIR",
                   help="folder to write (new or empty, unless --force)")
    c.add_argument("--models", default=None, metavar="NAME|DIR",
                   help="a shipped model set or a folder (default: the shipped 'circuit' set, "
                        "44.1 kHz)")
    c.add_argument("--no-circuit", action="store_true",
                   help="leave out the circuit gain stage's files")
    c.add_argument("--force", action="store_true",
                   help="replace the library's own files in a folder that holds others")
    p = formats.add_parser("plugin", help="LV2, VST3 and CLAP plugins and a JACK program, built "
                           "from the C export with DPF",
                           description="Builds the pedal (both engines, switchable) as plugins "
                           "in three channel layouts (klon_mono, klon_mono_stereo, klon_stereo) "
                           "into OUTDIR, with their sources in OUTDIR/src. Needs make, g++ and "
                           "Debian's dpf-source (scripts/setup --plugins). See docs/plugins.md.")
    p.add_argument("out", metavar="OUTDIR", help="folder to make (new or empty, unless --force)")
    p.add_argument("--formats", default=",".join(PLUGIN_FORMATS), metavar="LIST",
                   help=f"comma-separated, from {','.join(PLUGIN_FORMATS)} (default: all)")
    p.add_argument("--layouts", default=",".join(PLUGIN_LAYOUTS), metavar="LIST",
                   help=f"comma-separated channel layouts, from {','.join(PLUGIN_LAYOUTS)} "
                        "(default: all)")
    p.add_argument("--install", action="store_true",
                   help="also copy the bundles into ~/.lv2, ~/.vst3, ~/.clap (and the JACK "
                        "programs into ~/.local/bin)")
    p.add_argument("--force", action="store_true", help="replace OUTDIR if it holds files")


def export(args: argparse.Namespace) -> None:
    if args.format == "plugin":
        export_plugins(args)
        return
    from klon.export.c99.neural_c import export_c
    model, out = (args.source, args.out) if args.out is not None else (None, args.source)
    if out is None:
        raise KlonError("give the folder to write: klon export c [MODEL.json] OUTDIR")
    if model is not None and args.models is not None:
        raise KlonError("give one model file or --models, not both")
    try:
        paths = export_c(out, models=args.models, model=model, circuit=not args.no_circuit,
                         force=args.force)
    except OSError as error:  # a read-only folder, a full disk: the files are written whole or
        # not at all (atomic_write), so saying which and why is all that is left to do
        where = f" ({error.filename})" if error.filename and str(error.filename) != out else ""
        raise KlonError(f"cannot write the C library into '{out}'{where}: "
                        f"{error.strerror or error}") from None
    if model is not None:  # said after the files are written: an error stays one line
        from klon.neural.gain_stage import note_fixed_model
        from klon.neural.model_file import read_model
        note_fixed_model(read_model(model))
    for path in paths:
        print(path)


def export_plugins(args: argparse.Namespace) -> None:
    from klon.export.plugin.build import export_plugin, install, parse_list
    formats = parse_list(args.formats, PLUGIN_FORMATS, "plugin format")
    layouts = parse_list(args.layouts, PLUGIN_LAYOUTS, "channel layout")
    bundles = export_plugin(args.out, formats, layouts, force=args.force)
    for path in bundles:
        print(path)
    if args.install:
        for path in install(bundles):
            print(f"installed {path}")


HANDLERS = {"export": export}
