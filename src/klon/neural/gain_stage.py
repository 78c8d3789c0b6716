"""The neural engine's gain stage: a model bank in place of the circuit's gain stage.

A set of models was trained at one rate (44.1 kHz for the published ones) and a recurrent
model's dynamics are counted in samples, so the stage runs only at its models' rate and refuses
any other with a clear error (resample the audio first, or use the circuit engine, which runs
at any rate). Without a set named, it takes the shipped circuit-trained set for the host rate:
44.1 or 48 kHz. In the pedal the treble control runs at the host rate beside it (the circuit
engine oversamples it: its pre-warped bilinear transform bends the +17 dB top octave by a few
percent at 44.1 kHz).

One model file (`model=`) plays at every Gain as it is. A model with no Gain setting (trained on
a pair of recordings, `klon train --input --target`) is such a fixed model by nature: it runs,
with a FixedModelWarning (`klon: note:` on the command line) saying the Gain knob does nothing.
"""
import warnings
from typing import Any

from klon.core.errors import KlonError
from klon.neural.bank import ModelBank
from klon.neural.model import load_model
from klon.neural.model_file import ModelSpec

# the shipped sets trained on the circuit engine, by the rate they run at
DEFAULT_MODELS = {44_100: "circuit", 48_000: "circuit-48k"}


class FixedModelWarning(UserWarning):
    """A model with no Gain setting is used at every Gain: the Gain knob does not change it."""


def note_fixed_model(spec: ModelSpec) -> None:
    """Warn (FixedModelWarning) when a model has no Gain setting, once per model file."""
    if spec.gain is None and spec.inputs == 1:
        warnings.warn(f"model '{spec.name}' has no Gain setting (trained on recordings at one "
                      f"setting): it plays as it is at every Gain, the Gain knob changes nothing",
                      FixedModelWarning, stacklevel=3)


def _rate(sample_rate: Any) -> float:
    try:
        return float(sample_rate)
    except (TypeError, ValueError):
        raise KlonError(f"sample rate must be a number, got {sample_rate!r}") from None


def default_models(sample_rate: Any) -> str:
    """The shipped circuit-trained set that runs at `sample_rate`."""
    rate = _rate(sample_rate)
    if rate not in DEFAULT_MODELS:
        rates = " and ".join(f"{r / 1000:g} kHz" for r in DEFAULT_MODELS)
        raise KlonError(f"the shipped neural models run at {rates}, not {rate:g} Hz: resample the "
                        f"audio, train models at this rate (klon dataset --sample-rate) or use the "
                        f"circuit engine")
    return DEFAULT_MODELS[rate]


def check_circuit_options(diode: str | None = None, oversampling: int | None = None) -> None:
    """The neural engine's models fix the diode and run at the host rate: refuse other asks."""
    if str(diode or "1n34a").lower() != "1n34a" or oversampling is not None:
        raise KlonError("the diode and oversampling choices apply to the circuit engine: the "
                        "neural engine's models fix both")


def neural_gain_stage(sample_rate: Any, gain: float = 0.5, models: Any = None, model: Any = None,
                      diode: str | None = None, oversampling: int | None = None) -> ModelBank:
    """The model bank as a gain stage: volts in at the gain stage's input, volts out at the
    summing amp's output (the convention the models were trained in). `models`: a set
    (default: the shipped one for the rate); `model`: one file used at every Gain instead (one
    with no Gain setting runs too, with a FixedModelWarning)."""
    check_circuit_options(diode, oversampling)
    rate = _rate(sample_rate)
    if model is not None:
        spec = load_model(model)
        note_fixed_model(spec)
        bank = ModelBank([spec], gain)
    else:
        bank = ModelBank(default_models(rate) if models is None else models, gain)
    if rate != bank.sample_rate:
        raise KlonError(f"the neural engine runs at its models' rate, {bank.sample_rate:g} Hz, "
                        f"not {rate:g} Hz: resample the audio to {bank.sample_rate:g} Hz or use "
                        f"the circuit engine")
    return bank
