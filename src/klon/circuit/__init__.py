"""The Klon Centaur as a circuit: component values, one object per stage, the pedal."""
from .components import DIODES
from .gain_stage import GainStage
from .linear_stages import InputBuffer, OutputStage, Tone
from .pedal import Centaur

__all__ = ["Centaur", "DIODES", "GainStage", "InputBuffer", "OutputStage", "Tone"]
