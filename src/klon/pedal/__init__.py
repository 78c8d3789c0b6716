"""The Klon Centaur as a circuit: component values, one object per stage, the pedal."""
from klon.pedal.components import DIODES
from klon.pedal.gain_stage import GainStage
from klon.pedal.stages import InputBuffer, OutputStage, Tone
from klon.pedal.centaur import Centaur

__all__ = ["Centaur", "DIODES", "GainStage", "InputBuffer", "OutputStage", "Tone"]
