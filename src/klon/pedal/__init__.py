"""The Klon Centaur: component values, the shared stages (input buffer, treble control, output
stage), the circuit's gain stage, and the pedal that puts a gain stage between the shared ones.

Names are handed on lazily: the neural runtime imports klon.pedal.stages without loading the
circuit's gain stage and its wave digital filters.
"""
from klon.core.lazy import lazy_names

_WHERE = {"Centaur": "centaur", "GainStage": "gain_stage", "DIODES": "components",
          "InputBuffer": "stages", "OutputStage": "stages", "Tone": "stages"}
__all__ = sorted(_WHERE)
__getattr__ = lazy_names(__name__, _WHERE)
