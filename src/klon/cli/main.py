"""The `klon` command: the command modules' parsers assembled, and their errors turned into one
line.

Every problem the user can fix (a KlonError) ends as one line on stderr and exit status 2, with
no traceback and no partial output file.
"""
import argparse
import sys

from klon.cli import export, live, process, score, tools, training
from klon.core.errors import KlonError

# in the order `klon --help` lists their commands
COMMANDS = (process, tools, training, live, export, score)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="klon", description="The Klon Centaur overdrive, "
                                     "modelled as a circuit and verified against SPICE.")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.add_parsers(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one `klon` command; returns the exit status."""
    args = _parser().parse_args(argv)
    handlers = {name: handler for module in COMMANDS for name, handler in module.HANDLERS.items()}
    try:
        handlers[args.command](args)
    except KlonError as exc:
        print(f"klon: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("klon: interrupted", file=sys.stderr)
        return 130
    return 0
