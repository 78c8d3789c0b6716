"""The `klon` command: one thin module per command group over library functions."""
from klon.cli import main

__all__ = ["main"]
