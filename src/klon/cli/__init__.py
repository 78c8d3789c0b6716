"""The `klon` command: one thin module per command group over library functions."""
from klon.cli.main import main

__all__ = ["main"]
