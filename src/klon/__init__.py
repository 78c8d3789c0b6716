"""klon: the Klon Centaur overdrive, modelled as a circuit and verified against SPICE.

Names are handed on lazily, so `import klon.wdf` does not load (and compile) the whole pedal.
"""
from klon.core.errors import KlonError

__all__ = ["Centaur", "GainStage", "KlonError"]
__version__ = "0.1.0"


def __getattr__(name):
    if name in ("Centaur", "GainStage"):
        from klon import pedal
        return getattr(pedal, name)
    raise AttributeError(f"module 'klon' has no attribute {name!r}")
