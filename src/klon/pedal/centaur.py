"""The whole pedal: input buffer -> gain stage -> treble control -> output stage.

The gain stage and the treble control run oversampled (between one up- and one down-sampler),
the input buffer and output stage at the host rate.
"""
import numpy as np
from numba import njit

from klon.dsp.oversampling import _downsample, _upsample
from klon.core.errors import KlonError
from klon.pedal.gain_stage import GainStage, offline, run_gain_stage
from klon.pedal.stages import INPUT_BUFFER, OUTPUT_STAGE, TONE, InputBuffer, OutputStage, Tone, run_stage

MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 22_050, 192_000
ENGINES = ("circuit", "neural")


def check_sample_rate(sample_rate):
    try:
        rate = float(sample_rate)
    except (TypeError, ValueError):
        raise KlonError(f"sample rate must be a number, got {sample_rate!r}") from None
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise KlonError(f"unsupported sample rate {rate:g} Hz: klon runs at "
                        f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz")
    return rate


@njit(cache=True, error_model="numpy")
def _run_pedal(x, y, start, stop, low, high, high_out, buffer_args, tone_args, output_args,
               oversampler_args, gain_args):
    """One piece of a block through every stage: one compiled call, so a block costs one
    dispatch from Python however many stages there are. Refuses (returns False, touching
    nothing) if the input holds NaN or Inf."""
    n = stop - start
    for ch in range(x.shape[0]):
        for t in range(n):
            v = x[ch, start + t]
            if not np.isfinite(v):
                return False
            low[ch, t] = v
    a = low[:, :n]
    h = high[:, :n * (high.shape[1] // low.shape[1])]
    ho = high_out[:, :h.shape[1]]
    run_stage(INPUT_BUFFER, a, a, *buffer_args)
    g1, g2, up1, up2, down1, down2, acc = oversampler_args
    if g1.shape[0] == 0:  # no oversampling
        run_gain_stage(a, a, *gain_args)
        run_stage(TONE, a, a, *tone_args)
    else:
        _upsample(a, h, g1, g2, up1, up2, acc)
        run_gain_stage(h, ho, *gain_args)
        run_stage(TONE, ho, ho, *tone_args)
        _downsample(ho, a, g1, g2, down1, down2, acc)
    run_stage(OUTPUT_STAGE, a, a, *output_args)
    for ch in range(x.shape[0]):
        for t in range(n):
            y[ch, start + t] = a[ch, t]
    return True


def as_block(block):
    """A block to stream, checked: (the array, its channels x frames view)."""
    x = np.asarray(block)
    if x.ndim not in (1, 2) or x.dtype.kind != "f":
        raise KlonError(f"audio must be a float array, 1-D or channels x frames; got "
                        f"{x.dtype} with shape {x.shape}")
    return x, (x.reshape(1, -1) if x.ndim == 1 else x)


class ToneAndLevel:
    """The treble and level knobs of a pedal with `tone` and `output_stage` (both engines)."""

    @property
    def treble(self):
        return self.tone.knob

    @treble.setter
    def treble(self, value):
        self.tone.knob = value

    @property
    def level(self):
        return self.output_stage.knob

    @level.setter
    def level(self, value):
        self.output_stage.knob = value


class Centaur(ToneAndLevel):
    """The Klon Centaur. Samples are volts: 1.0 in is 1 V at the input jack, 1.0 out 1 V at the
    output jack.

    `Centaur(sample_rate)(audio)` processes a whole signal (mono 1-D or channels x frames) with
    fresh state and no latency. `process(block)` streams with state kept (it then lags by
    `latency` samples, the oversampling filters' delay). Knobs (gain, treble, level in [0, 1]) may
    change at any time; they glide over 50 ms.
    """

    def __new__(cls, sample_rate, gain=0.5, treble=0.5, level=0.5, engine="circuit",
                diode="1n34a", oversampling=None, models=None, model=None):
        """engine="neural" gives klon.neural's NeuralCentaur (same knobs and methods): the gain
        stage replaced by trained models, `models` a set name or folder, `model` one file."""
        if engine not in ENGINES:
            raise KlonError(f"unknown engine {engine!r}: this build has {', '.join(ENGINES)}")
        if engine == "circuit":
            if models is not None or model is not None:
                raise KlonError("models= and model= choose the neural engine's models: "
                                "pass engine='neural'")
            return super().__new__(cls)
        from klon.neural.gain_stage import NeuralCentaur, check_circuit_options
        check_circuit_options(diode, oversampling)
        return NeuralCentaur(sample_rate, gain, treble, level, models=models, model=model)

    def __init__(self, sample_rate, gain=0.5, treble=0.5, level=0.5, engine="circuit",
                 diode="1n34a", oversampling=None, models=None, model=None):
        self.engine = engine
        self.sample_rate = check_sample_rate(sample_rate)
        self.input_buffer = InputBuffer(self.sample_rate)
        self.gain_stage = GainStage(self.sample_rate, gain, diode, oversampling)
        # the treble shelf runs at the oversampled rate too: at 44.1 kHz the bilinear transform
        # would bend its +17 dB top octave by a few percent
        self.tone = Tone(self.sample_rate * self.gain_stage.oversampling, treble)
        self.output_stage = OutputStage(self.sample_rate, level)
        self.reset(1)

    @property
    def latency(self):
        return self.gain_stage.latency

    @property
    def gain(self):
        return self.gain_stage.gain

    @gain.setter
    def gain(self, value):
        self.gain_stage.gain = value

    def reset(self, channels=None):
        """Clear all state (as if the pedal had just been switched on at rest); a channel count
        re-sizes it."""
        channels = self.gain_stage.channels if channels is None else channels
        for stage in (self.input_buffer, self.gain_stage, self.tone, self.output_stage):
            stage.reset(channels)
        self._prepare(channels, 0)

    def _prepare(self, channels, frames):
        """Work buffers for blocks of up to `frames` (grown, never shrunk)."""
        frames = max(frames, 256)
        f = self.gain_stage.oversampling
        self._low = np.zeros((channels, frames))
        self._high = np.zeros((2, channels, frames * f))
        os = self.gain_stage.oversampler
        oversampler_args = (os._g1, os._g2, os._up1, os._up2, os._down1, os._down2, os._acc)
        stage_args = tuple((s.state, s.smoother, s.params)
                           for s in (self.input_buffer, self.tone, self.output_stage))
        # built once: a block then costs one dispatch with these very arrays
        self._kernel_args = (self._low, self._high[0], self._high[1], *stage_args,
                             oversampler_args, self.gain_stage.kernel_args())

    def process(self, block, out=None):
        """Stream one block: 1-D (mono) or channels x frames; returns float32 (or fills `out`,
        any float dtype, same shape). A new channel count resets the state."""
        x, x2 = as_block(block)
        channels, frames = x2.shape
        if channels != self.gain_stage.channels:
            self.reset(channels)
        if frames > self._low.shape[1]:
            self._prepare(channels, frames)
        if out is None:
            out = np.empty(x.shape, dtype=np.float32)
        # no views, generators or NumPy scalars here: a block makes no Python objects
        y2 = out if out.ndim == 2 else out.reshape(x2.shape)
        if self.gain_stage.smoother.item(3) == 0.0:  # Gain at rest: the whole block in one call
            if not _run_pedal(x2, y2, 0, frames, *self._kernel_args):
                raise KlonError("audio contains NaN or Inf samples")
            return out
        start = 0
        while start < frames:
            stop = self.gain_stage.next_segment(start, frames)
            if not _run_pedal(x2, y2, start, stop, *self._kernel_args):
                raise KlonError("audio contains NaN or Inf samples")
            start = stop
        return out

    def __call__(self, audio):
        x = np.asarray(audio)
        if x.dtype.kind != "f":
            x = x.astype(np.float32)
        return offline(self, x)
