"""The `klon` command: the command modules' parsers assembled, and their errors turned into one
line.

Every problem the user can fix ends as one line on stderr and exit status 2, with no traceback
and no partial output file: a KlonError (`klon: error: ...`), a bad command line
(`klon CMD: error: ...`, from Parser), a file the system refuses (OSError) and memory
exhaustion (MemoryError).
"""
import argparse
import re
import sys
import warnings

from klon.cli import export, live, process, score, tools, training
from klon.core.errors import KlonError
from klon.core.files import TERMINATED

# in the order `klon --help` lists their commands
COMMANDS = (process, tools, training, live, export, score)

# a number that argparse would take for an option ('-inf', '-1e3', '-nan'); its own test for a
# negative number accepts only '-5' and '-.5'
_NUMBER_LIKE = re.compile(r"^-(inf(inity)?|nan|\d+\.?\d*([eE][-+]?\d+)?|\.\d+([eE][-+]?\d+)?)$",
                          re.IGNORECASE)


# what to try when a command runs out of memory (the default: a smaller input)
MEMORY_HINTS = {"train": "try a smaller --batch-size or --hidden, or less training data",
                "dataset": "try shorter or fewer inputs, or less --synth",
                "bench": "try fewer --seconds or --channels"}


def version() -> str:
    """The installed package's version (klon.__version__ when run from a source tree)."""
    from importlib import metadata
    try:
        return metadata.version("klon")
    except metadata.PackageNotFoundError:
        import klon
        return klon.__version__


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the text already names one, the option
    is a flag, or the default is None (the help says what happens then)."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (default is None or default is argparse.SUPPRESS or action.nargs == 0
                or "default" in text.lower()):
            return text  # nothing to say, a flag, or the text says it
        if not action.option_strings and action.nargs not in ("?", "*"):
            return text
        shown = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        return f"{text} (default: {shown})".lstrip()


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (`klon CMD: error: ...`, exit 2) instead of the usage
    text, help texts that show defaults, and negative numbers such as -inf read as values. Its
    subcommands' parsers are Parsers too (argparse makes them of the parent's class)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs):
        # an option without help text still shows its default (argparse skips an empty help)
        default = kwargs.get("default")
        if kwargs.get("help") is None and default is not None and default is not False:
            kwargs["help"] = "(default: %(default)s)"
        return super().add_argument(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args(join_negative_values(args), namespace)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def join_negative_values(args: list[str]) -> list[str]:
    """`--gain -inf` -> `--gain=-inf`: argparse reads '-inf' (or '-1e3') as an unknown option
    and then complains about usage; joined, the value reaches its option, whose check refuses it
    in one line. No klon command takes a positional that looks like a number."""
    joined, i = [], 0
    while i < len(args):
        arg = args[i]
        if (arg.startswith("--") and "=" not in arg and len(arg) > 2 and i + 1 < len(args)
                and _NUMBER_LIKE.match(args[i + 1])):
            joined.append(f"{arg}={args[i + 1]}")
            i += 2
            continue
        joined.append(arg)
        i += 1
    return joined


def parser() -> Parser:
    """The whole `klon` command line."""
    top = Parser(prog="klon", description="The Klon Centaur overdrive, modelled as a circuit "
                 "(verified against SPICE) and as a neural network.")
    top.add_argument("--version", action="version", version=f"klon {version()}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parsers(commands)
    return top


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """klon's own warnings (a model with no Gain setting, ...) as one `klon: note:` line each,
    each said once; other libraries' as Python shows them."""
    if category.__module__.startswith("klon."):
        text = f"klon: note: {message}"
        if text not in _NOTED:
            _NOTED.add(text)
            print(text, file=sys.stderr, flush=True)
    else:
        _SHOW_WARNING(message, category, filename, lineno, file, line)


_SHOW_WARNING = warnings.showwarning
_NOTED: set[str] = set()


def main(argv: list[str] | None = None) -> int:
    """Run one `klon` command; returns the exit status."""
    args = parser().parse_args(argv)
    handlers = {name: handler for module in COMMANDS for name, handler in module.HANDLERS.items()}
    command = f"klon {args.command}"
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _run(handlers[args.command], args, command)


def _run(handler, args, command: str) -> int:
    try:
        handler(args)
    except KlonError as exc:
        return _fail(f"klon: error: {exc}")
    except KeyboardInterrupt:
        print("klon: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:
        if exc.code == TERMINATED:  # SIGTERM while a file was written: its temporary is gone
            print("klon: terminated", file=sys.stderr)
        raise
    except MemoryError:  # numpy's _ArrayMemoryError included
        hint = MEMORY_HINTS.get(args.command, "try a shorter or lower-rate file, or fewer "
                                "channels")
        return _fail(f"{command}: error: not enough memory: {hint}, or close other programs")
    except RecursionError:
        return _fail(f"{command}: error: an input is nested too deeply to read")
    except OSError as exc:
        # the last net: the commands turn the errors they expect into KlonErrors themselves
        where = f" '{exc.filename}'" if exc.filename else ""
        return _fail(f"{command}: error: cannot access{where}: {exc.strerror or exc}")
    return 0


def _fail(line: str) -> int:
    print(line, file=sys.stderr)
    return 2
