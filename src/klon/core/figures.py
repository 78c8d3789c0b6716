"""Matplotlib figures as files: headless (Agg) and saved atomically.

matplotlib is imported only when a figure is made, so nothing that merely imports klon pays for
it (or needs it installed).
"""
import os

from klon.core.files import atomic_path

DPI = 110


def pyplot():
    """matplotlib.pyplot on the Agg backend: klon's figures are files, never windows, and Agg
    works on machines without a display."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path: str | os.PathLike) -> None:
    """Write `fig` as a PNG (whole or not at all) and close it."""
    with atomic_path(path) as temporary:
        fig.savefig(temporary, dpi=DPI, format="png")
    pyplot().close(fig)
