"""The whole pedal: input buffer -> gain stage -> treble control -> output stage."""
import numpy as np
from numba import njit

from ..errors import KlonError
from .gain_stage import GainStage, offline
from .linear_stages import InputBuffer, OutputStage, Tone, check_knob

MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 22_050, 192_000
ENGINES = ("circuit",)


def check_sample_rate(sample_rate):
    try:
        rate = float(sample_rate)
    except (TypeError, ValueError):
        raise KlonError(f"sample rate must be a number, got {sample_rate!r}") from None
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise KlonError(f"unsupported sample rate {rate:g} Hz: klon runs at "
                        f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz")
    return rate


@njit(cache=True)
def all_finite(x):
    for v in x.flat:
        if not np.isfinite(v):
            return False
    return True


class Centaur:
    """The Klon Centaur. Samples are volts: 1.0 in is 1 V at the input jack, 1.0 out 1 V at the
    output jack.

    `Centaur(sample_rate)(audio)` processes a whole signal (mono 1-D or channels x frames) with
    fresh state and no latency. `process(block)` streams with state kept (it then lags by
    `latency` samples, the oversampling filters' delay). Knobs (gain, treble, level in [0, 1]) may
    change at any time; they glide over 50 ms.
    """

    def __init__(self, sample_rate, gain=0.5, treble=0.5, level=0.5, engine="circuit",
                 diode="1n34a", oversampling=None):
        if engine not in ENGINES:
            raise KlonError(f"unknown engine {engine!r}: this build has {', '.join(ENGINES)}")
        self.engine = engine
        self.sample_rate = check_sample_rate(sample_rate)
        self._channels = 1
        self.input_buffer = InputBuffer(self.sample_rate)
        self.gain_stage = GainStage(self.sample_rate, gain, diode, oversampling)
        self.tone = Tone(self.sample_rate, treble)
        self.output_stage = OutputStage(self.sample_rate, level)
        self._buffers = np.zeros((2, 1, 0))

    @property
    def latency(self):
        return self.gain_stage.latency

    @property
    def gain(self):
        return self.gain_stage.gain

    @gain.setter
    def gain(self, value):
        self.gain_stage.gain = value

    @property
    def treble(self):
        return self.tone._smoother[1]

    @treble.setter
    def treble(self, value):
        self.tone.set_knob(value)

    @property
    def level(self):
        return self.output_stage._smoother[1]

    @level.setter
    def level(self, value):
        self.output_stage.set_knob(value)

    def reset(self, channels=None):
        """Clear all state (as if the pedal had just been switched on at rest)."""
        if channels is not None:
            self._channels = channels
        for stage in (self.input_buffer, self.gain_stage, self.tone, self.output_stage):
            stage.reset(self._channels)

    def process(self, block, out=None):
        """Stream one block: 1-D (mono) or channels x frames, any float dtype; returns float32
        (or fills `out`). A new channel count resets the state."""
        x = np.asarray(block)
        if x.ndim not in (1, 2):
            raise KlonError(f"audio must be 1-D or channels x frames, got shape {x.shape}")
        if x.dtype.kind not in "fiu":
            raise KlonError(f"audio must be numeric, got {x.dtype}")
        x2 = x.reshape(1, -1) if x.ndim == 1 else x
        if not all_finite(x2):
            raise KlonError("audio contains NaN or Inf samples")
        channels, frames = x2.shape
        if channels != self._channels:
            self.reset(channels)
        if self._buffers.shape[1] != channels or self._buffers.shape[2] < frames:
            self._buffers = np.zeros((2, channels, frames))
        a = self._buffers[0, :, :frames]
        b = self._buffers[1, :, :frames]
        a[...] = x2
        self.input_buffer.process(a, a)
        self.gain_stage.process(a, b)
        self.tone.process(b, b)
        self.output_stage.process(b, b)
        if out is None:
            out = np.empty(x.shape, dtype=np.float32)
        out.reshape(channels, frames)[...] = b
        return out

    def __call__(self, audio):
        return offline(self, audio)
