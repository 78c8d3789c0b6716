"""One recurrent model, streamed block by block with its state kept."""
import os

import numpy as np

from klon.core.errors import KlonError
from klon.core.processor import as_volts, check_out, steady_pair
from klon.neural.architectures import architecture
from klon.neural.kernels import HISTORY, compiled
from klon.neural.model_file import ModelSpec, read_model

PREROLL_SAMPLES = HISTORY  # zeros run through a fresh model (2048, as the original plugin did)
SETTLE_CHUNKS = 32  # silence_state runs at most this many pre-rolls of zeros (65536 samples)
SETTLED = 1e-6  # ... stopping once no state value moves more than this over one pre-roll


def load_model(source: str | os.PathLike | ModelSpec) -> ModelSpec:
    """A ModelSpec from a path (or a ModelSpec, passed through)."""
    return source if isinstance(source, ModelSpec) else read_model(source)


def rest_state(spec: ModelSpec, kernels: dict | None = None) -> np.ndarray:
    """The model's packed row after PREROLL_SAMPLES zeros from a zero state: where it rests with
    no signal, so starting there does not click (from a zero state the published GRUs jump by
    up to 0.17 V on the first sample)."""
    kernels = kernels or compiled(spec.kind, spec.hidden_size, spec.inputs)
    row = architecture(spec.kind).pack(spec)[None, :]
    kernels["run_model"](np.zeros((1, spec.inputs, PREROLL_SAMPLES), dtype=np.float32),
                         np.empty((1, PREROLL_SAMPLES), dtype=np.float32), row)
    return row[0]


def silence_state(spec: ModelSpec, kernels: dict | None = None,
                  knobs: tuple = ()) -> tuple[np.ndarray, float]:
    """(row, output): the model settled in silence, and what it outputs there; `knobs` are
    the values held on a Gain-conditioned model's knob inputs meanwhile (zeros if not given).

    The row is run on zeros, pre-roll after pre-roll, until no state value moves more than
    SETTLED over one (the published GRUs need 2048 to 65536 samples; a few wobble by a float32
    ulp for ever, which is why the test is not exact equality), so it sits at its silence
    fixed point; the output is one more zero step from there (the row is left as it was). The
    neural engine's bank starts every model here and subtracts that output, so its gain stage
    maps 0 V to 0 V, as the circuit's does, and the pedal starts silent."""
    kernels = kernels or compiled(spec.kind, spec.hidden_size, spec.inputs)
    row = architecture(spec.kind).pack(spec)[None, :]
    zeros = np.zeros((1, spec.inputs, PREROLL_SAMPLES), dtype=np.float32)
    for i, value in enumerate(knobs):
        zeros[0, 1 + i] = value
    out = np.empty((1, PREROLL_SAMPLES), dtype=np.float32)
    for _ in range(SETTLE_CHUNKS):
        before = row.copy()
        kernels["run_model"](zeros, out, row)
        if np.max(np.abs(row - before)) <= SETTLED:
            break
    probe = row.copy()
    kernels["run_model"](zeros[:, :, :1], out[:, :1], probe)
    return row[0], float(out[0, 0])


class RecurrentModel:
    """A GRU or LSTM model (RTNeural/Keras JSON) running in a compiled kernel.

    `process(block)` streams: the state carries over, so the output does not depend on how the
    signal is cut into blocks. Blocks are (frames,) or (channels, frames) for one-input models,
    (inputs, frames) or (channels, inputs, frames) otherwise; each channel has its own state.
    `model(x)` runs a whole signal from rest. `reset()` returns to rest (the pre-rolled state).
    """

    def __init__(self, source):
        self.spec = load_model(source)
        self.kind, self.hidden_size, self.inputs = (self.spec.kind, self.spec.hidden_size,
                                                    self.spec.inputs)
        self.sample_rate = self.spec.sample_rate
        self.gain = self.spec.gain
        kernels = compiled(self.kind, self.hidden_size, self.inputs)
        self._run, self._run_mono = kernels["run_model"], kernels["run_mono"]
        self._rest = rest_state(self.spec)
        self._architecture = architecture(self.kind)
        self._offsets = self._architecture.layout(self.hidden_size, self.inputs)[0]
        self.reset(1)

    def reset(self, channels=None):
        """Back to rest; a channel count re-sizes the state."""
        channels = self.channels if channels is None else channels
        self.channels = channels
        self.rows = np.empty((channels, self._rest.size), dtype=np.float32)
        self.rows[:] = self._rest  # row c: channel c

    @property
    def state(self):
        """The state per channel (a copy), H values per state vector: the hidden state, then
        (LSTM) the cell state."""
        o, H = self._offsets, self.hidden_size
        return np.concatenate([self.rows[:, o[block]:o[block] + H]
                               for block in self._architecture.STATE_BLOCKS], axis=1)

    def _shape(self, x):
        """(channels, inputs, frames) view of a block, or a KlonError."""
        if x.dtype.kind != "f":
            raise KlonError(f"audio must be a float array, got {x.dtype}")
        k = self.inputs
        if k == 1 and x.ndim in (1, 2):
            return x.reshape(1 if x.ndim == 1 else x.shape[0], 1, x.shape[-1])
        if k > 1 and x.ndim in (2, 3) and x.shape[-2] == k:
            return x.reshape(1 if x.ndim == 2 else x.shape[0], k, x.shape[-1])
        expected = ("(frames,) or (channels, frames)" if k == 1 else
                    f"({k}, frames) or (channels, {k}, frames)")
        raise KlonError(f"this model has {k} input(s): blocks must be {expected}, got shape "
                        f"{x.shape}")

    def process(self, block, out=None):
        """Stream one block; returns float32 (or fills `out`, float, one value per frame and
        channel). A new channel count resets the state. Samples as klon.core.processor takes
        them (integer PCM scaled, float16 widened, bool/complex refused)."""
        if (self.inputs == 1 and self.channels == 1 and out is not None
                and steady_pair(block, out)
                and (block.ndim == 1 or block.ndim == 2 and block.shape[0] == 1)):
            # one channel streamed with `out` (frames, or 1 x frames), the steady case: straight
            # to the kernel, no conversions or reshaping on the way
            if not self._run_mono(block.reshape(-1), out.reshape(-1), self.rows):
                raise KlonError("audio contains NaN or Inf samples")
            return out
        x = as_volts(block, "block")
        if out is not None:
            check_out(out)  # any shape holding a value per frame and channel (below)
        x3 = self._shape(x)
        if x3.shape[0] != self.channels:
            self.reset(x3.shape[0])
        channels, frames = x3.shape[0], x3.shape[2]
        if out is None:
            mono = x.ndim == (1 if self.inputs == 1 else 2)
            out = np.empty(frames if mono else (channels, frames), dtype=np.float32)
        elif out.size != channels * frames:
            raise KlonError(f"out must be a float array of {channels * frames} values, got "
                            f"{out.dtype} with shape {out.shape}")
        y2 = out.reshape(channels, frames)
        if not np.may_share_memory(y2, out):  # a strided out reshaped into a copy: lost
            raise KlonError(f"out of shape {out.shape} cannot hold {channels} x {frames} "
                            f"samples in place: pass a contiguous array")
        if not self._run(x3, y2, self.rows):
            raise KlonError("audio contains NaN or Inf samples")
        return out

    def __call__(self, x):
        """A whole signal from rest (the state is reset first)."""
        x = as_volts(x)
        self.reset(self._shape(x).shape[0])
        return self.process(x)
