"""Saving matplotlib figures: headless (Agg) and atomic."""
import os

from klon.core.files import atomic_path

DPI = 110


def save_figure(fig, path: str | os.PathLike) -> None:
    """Write `fig` as a PNG (whole or not at all) and close it."""
    import matplotlib.pyplot as plt
    with atomic_path(path) as temporary:
        fig.savefig(temporary, dpi=DPI, format="png")
    plt.close(fig)
