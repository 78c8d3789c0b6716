"""The Klon Centaur: component values, the shared stages (input buffer, treble control, output
stage), the circuit's gain stage, and the pedal that puts a gain stage between the shared ones.

Names are handed on lazily: the neural runtime imports klon.pedal.stages without loading the
circuit's gain stage and its wave digital filters.
"""
import importlib

_WHERE = {"Centaur": "centaur", "GainStage": "gain_stage", "DIODES": "components",
          "InputBuffer": "stages", "OutputStage": "stages", "Tone": "stages"}

__all__ = sorted(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(f"klon.pedal.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'klon.pedal' has no attribute {name!r}")
