"""The neural engine's gain stage: a trained model (or a bank of them) in place of the circuit's.

The default is the shipped five-model bank `circuit` (`circuit-48k` at 48 kHz): one GRU-8 per
Gain setting, crossfaded, within 0.001-0.83 % ESR of the circuit at its five settings and up to
6.7 % between them. The Gain-conditioned model `circuit-cond` (`models="circuit-cond"`: one
GRU-16 that takes the audio and the gliding Gain) is within 0.27-0.79 % at Gains 0-1 on DI
clips, but 1.1 % off at Gain 1 on generated playing (the demo's drive, where the bank is
0.46 %), so it is not yet the default (docs/conditioned.md).

A recurrent model's dynamics are counted in samples, so models run at the rate they were
trained at (44.1 kHz for the shipped ones but circuit-48k); at any other host rate from 22.05
to 192 kHz they run inside streaming converters (klon.dsp.resampler), which adds `latency`. In
the pedal the treble control runs at the host rate beside it (the circuit engine oversamples
it: its pre-warped bilinear transform bends the +17 dB top octave by a few percent at 44.1 kHz).

One model file (`model=`) plays at every Gain as it is. A model with no Gain setting (trained on
a pair of recordings, `klon train --input --target`) is such a fixed model by nature: it runs,
with a FixedModelWarning (`klon: note:` on the command line) saying the Gain knob does nothing.
"""
import warnings
from typing import Any

from klon.core.errors import KlonError
from klon.dsp.resampler import check_rate
from klon.neural.bank import ModelBank
from klon.neural.model import load_model
from klon.neural.model_file import ModelSpec

# the shipped set each rate gets by default: its own where one was trained at that rate
DEFAULT_MODELS = {48_000: "circuit-48k"}
DEFAULT_SET = "circuit"  # 44.1 kHz, resampled around at any other rate


class FixedModelWarning(UserWarning):
    """A model with no Gain setting is used at every Gain: the Gain knob does not change it."""


def note_fixed_model(spec: ModelSpec) -> None:
    """Warn (FixedModelWarning) when a model has no Gain setting, once per model file."""
    if spec.gain is None and spec.inputs == 1:
        warnings.warn(f"model '{spec.name}' has no Gain setting (trained on recordings at one "
                      f"setting): it plays as it is at every Gain, the Gain knob changes nothing",
                      FixedModelWarning, stacklevel=3)


def check_circuit_options(diode: str | None = None, oversampling: int | None = None) -> None:
    """The neural engine's models fix the diode and run at the host rate: refuse other asks."""
    if str(diode or "1n34a").lower() != "1n34a" or oversampling is not None:
        raise KlonError("the diode and oversampling choices apply to the circuit engine: the "
                        "neural engine's models fix both")


def neural_gain_stage(sample_rate: Any, gain: float = 0.5, models: Any = None, model: Any = None,
                      diode: str | None = None, oversampling: int | None = None) -> ModelBank:
    """The model bank as a gain stage at the host rate `sample_rate`: volts in at the gain
    stage's input, volts out at the summing amp's output (the convention the models were
    trained in). `models`: a set (default: default_models(rate)); `model`: one file used at every
    Gain instead (one with no Gain setting runs too, with a FixedModelWarning)."""
    check_circuit_options(diode, oversampling)
    rate = check_rate(sample_rate)
    if model is not None:
        spec = load_model(model)
        note_fixed_model(spec)
        return ModelBank([spec], gain, sample_rate=rate)
    return ModelBank(default_models(rate) if models is None else models, gain, sample_rate=rate)


def default_models(sample_rate: Any) -> str:
    """The shipped set the neural engine takes at this rate when none is named."""
    return DEFAULT_MODELS.get(check_rate(sample_rate), DEFAULT_SET)
