"""The neural pedal: input buffer -> model bank (in place of the gain stage) -> treble control ->
output stage, all at the host rate in one compiled call per block.

The linear stages are the circuit engine's own objects. A set of models was trained at one rate
(44.1 kHz for the published ones) and a recurrent model's dynamics are counted in samples, so the
pedal runs only at its models' rate and refuses any other with a clear error (resample the audio
first, or use the circuit engine, which runs at any rate). Without a set named, the pedal takes
the shipped circuit-trained set for the host rate: 44.1 or 48 kHz. The treble shelf runs at the host rate here,
where the circuit engine oversamples it: its pre-warped bilinear transform bends the +17 dB top
octave by a few percent at 44.1 kHz.
"""
import numpy as np

from klon.pedal.gain_stage import offline
from klon.pedal.stages import InputBuffer, OutputStage, Tone
from klon.pedal.centaur import ToneAndLevel, as_block
from klon.core.errors import KlonError
from klon.neural.bank import ModelBank
from klon.neural.model import load_model

# the shipped sets trained on the circuit engine, by the rate they run at
DEFAULT_MODELS = {44_100: "circuit", 48_000: "circuit-48k"}


def _rate(sample_rate):
    try:
        return float(sample_rate)
    except (TypeError, ValueError):
        raise KlonError(f"sample rate must be a number, got {sample_rate!r}") from None


def default_models(sample_rate):
    """The shipped circuit-trained set that runs at `sample_rate`."""
    rate = _rate(sample_rate)
    if rate not in DEFAULT_MODELS:
        rates = " and ".join(f"{r / 1000:g} kHz" for r in DEFAULT_MODELS)
        raise KlonError(f"the shipped neural models run at {rates}, not {rate:g} Hz: resample the "
                        f"audio, train models at this rate (klon dataset --sample-rate) or use the "
                        f"circuit engine")
    return DEFAULT_MODELS[rate]


def check_circuit_options(diode="1n34a", oversampling=None):
    """The neural engine's models fix the diode and run at the host rate: refuse other asks."""
    if str(diode).lower() != "1n34a" or oversampling is not None:
        raise KlonError("the diode and oversampling choices apply to the circuit engine: the "
                        "neural engine's models fix both")


def neural_gain_stage(sample_rate, gain=0.5, models=None, model=None):
    """The model bank alone, in place of the circuit's GainStage: volts in at the gain stage's
    input, volts out at the summing amp's output (the convention the models were trained in).
    `models`: a set (default: the shipped one for the rate); `model`: one file used at every Gain
    instead."""
    rate = _rate(sample_rate)
    if model is not None:
        bank = ModelBank([load_model(model)], gain)
    else:
        bank = ModelBank(default_models(rate) if models is None else models, gain)
    if rate != bank.sample_rate:
        raise KlonError(f"the neural engine runs at its models' rate, {bank.sample_rate:g} Hz, "
                        f"not {rate:g} Hz: resample the audio to {bank.sample_rate:g} Hz or use "
                        f"the circuit engine")
    return bank


class NeuralCentaur(ToneAndLevel):
    """The Klon Centaur with the gain stage replaced by recurrent models, one per Gain setting.

    `models`: a shipped set name (klon/models/<name>/) or a folder of model files (default: the
    shipped circuit-trained set for the rate); `model`: one model file used at every Gain instead (a two-input model gets the Gain as its second input).
    Same interface as the circuit engine's Centaur: knobs glide over 50 ms, `process(block)`
    streams (no latency), `pedal(audio)` processes a whole signal from rest.
    """

    engine = "neural"
    latency = 0

    def __init__(self, sample_rate, gain=0.5, treble=0.5, level=0.5, models=None, model=None):
        self.bank = neural_gain_stage(sample_rate, gain, models, model)
        self.sample_rate = rate = self.bank.sample_rate
        self.input_buffer = InputBuffer(rate)
        self.tone = Tone(rate, treble)
        self.output_stage = OutputStage(rate, level)
        self.reset(1)

    @property
    def gain(self):
        return self.bank.gain

    @gain.setter
    def gain(self, value):
        self.bank.gain = value

    def reset(self, channels=None):
        """Back to rest (the models pre-rolled, the filters empty); a channel count re-sizes."""
        channels = self.bank.channels if channels is None else channels
        self.channels = channels
        for stage in (self.input_buffer, self.bank, self.tone, self.output_stage):
            stage.reset(channels)
        self._prepare(channels, 0)

    def _prepare(self, channels, frames):
        """A work buffer for blocks of up to `frames` (grown, never shrunk)."""
        self._work = np.zeros((channels, max(frames, 256)))
        stage_args = tuple((s.state, s.smoother, s.params)
                           for s in (self.input_buffer, self.tone, self.output_stage))
        # built once: a block then costs one dispatch with these very arrays
        self._kernel_args = (self._work, *self.bank.kernel_args(), *stage_args)

    def process(self, block, out=None):
        """Stream one block: 1-D (mono) or channels x frames; returns float32 (or fills `out`,
        any float dtype, same shape). A new channel count resets the state."""
        x, x2 = as_block(block)
        channels, frames = x2.shape
        if channels != self.channels:
            self.reset(channels)
        if frames > self._work.shape[1]:
            self._prepare(channels, frames)
        if out is None:
            out = np.empty(x.shape, dtype=np.float32)
        y2 = out if out.ndim == 2 else out.reshape(x2.shape)
        if not self.bank.run_pedal(x2, y2, *self._kernel_args):
            raise KlonError("audio contains NaN or Inf samples")
        return out

    def __call__(self, audio):
        x = np.asarray(audio)
        if x.dtype.kind != "f":
            x = x.astype(np.float32)
        return offline(self, x)
