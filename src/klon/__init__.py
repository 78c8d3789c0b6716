"""klon: the Klon Centaur overdrive, modelled as a circuit (verified against SPICE) and as a
neural network.

Names are handed on lazily, so `import klon.wdf` does not load (and compile) the whole pedal.
"""
from klon.core.errors import KlonError
from klon.core.lazy import lazy_names

__all__ = ["Centaur", "GainStage", "KlonError", "load_model"]
__version__ = "0.1.0"
__getattr__ = lazy_names(__name__, {"Centaur": "pedal.centaur", "GainStage": "pedal.gain_stage",
                                    "load_model": "neural.model"})
