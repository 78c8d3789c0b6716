"""A bank of models, one per Gain setting, crossfaded as the Gain knob moves.

The Gain glides over 50 ms like the circuit's knobs; at every sample the output is the linear
mix of the two models whose Gain settings bracket the current Gain. The original plugin
crossfaded per block between models with stale states, and that glitched. Here a model's state
is always the one it would have had if it had run all along:
- at rest only the one or two bracketing models run (running all five would cost more than
  twice as much);
- when the knob moves, every model between the Gain and its new target starts running before
  the glide begins: from rest, it first replays the last 2048 input samples (46 ms), the length
  of the pre-roll that brings a fresh model to rest. The published models forget a difference
  in state within that (below 1e-11 after 2048 samples for all five), so the replayed state
  equals the always-running one to float precision;
- when the glide ends, the models it left stop.
"""
import itertools
import os
from pathlib import Path

import numpy as np

from klon.pedal.stages import SMOOTHING_SECONDS, check_knob
from klon.dsp.smoothing import smoother_set_target
from klon.core.errors import KlonError
from klon.neural.kernels import HISTORY, bracket, compiled
from klon.neural.model import load_model, rest_state

SHIPPED_MODELS = Path(__file__).resolve().parent.parent / "models"


def model_set_files(models):
    """The JSON files of a model set: a shipped set's name (a folder in klon/models) or a
    folder path."""
    name = os.fspath(models)
    folder = Path(name)
    if not folder.is_dir():
        folder = SHIPPED_MODELS / name
        if os.sep in name or "/" in name or not folder.is_dir():
            raise KlonError(f"no model set '{name}': give a folder of model files or one of the "
                            f"shipped sets ({', '.join(shipped_sets()) or 'none installed'})")
    files = sorted(folder.glob("*.json"))
    if not files:
        raise KlonError(f"model set '{name}': no .json model files in {folder}")
    return files


def shipped_sets():
    """Names of the model sets installed with klon."""
    if not SHIPPED_MODELS.is_dir():
        return []
    return sorted(p.name for p in SHIPPED_MODELS.iterdir() if p.is_dir() and any(p.glob("*.json")))


class ModelBank:
    """Gain -> model. `models`: a folder (or shipped set name), or a list of files/ModelSpecs,
    or a dict {gain: file or ModelSpec}. Each model's Gain comes from the dict key, else its
    metadata, else its file name (centaur_25.json: 0.25).

    One model alone is used at every Gain; a model with two inputs gets the smoothed Gain as its
    second input (a Gain-conditioned model). Outside the bank's range the nearest model plays.
    """

    def __init__(self, models, gain=0.5, channels=1):
        specs = _specs(models)
        first = specs[0][1]
        for _, spec in specs[1:]:
            if (spec.kind, spec.hidden_size, spec.inputs) != (first.kind, first.hidden_size,
                                                              first.inputs):
                raise KlonError(f"a model bank's models must share one shape: {first.name} is "
                                f"{_shape(first)}, {spec.name} is {_shape(spec)}")
            if spec.sample_rate != first.sample_rate:
                raise KlonError(f"a model bank's models must share one sample rate: {first.name}"
                                f" runs at {first.sample_rate:g} Hz, {spec.name} at "
                                f"{spec.sample_rate:g} Hz")
        if first.inputs > 2 or (first.inputs == 2 and len(specs) > 1):
            raise KlonError(f"{first.name} has {first.inputs} inputs: a model bank takes "
                            f"one-input models, or a single model with (audio, gain) inputs")
        self.specs = [spec for _, spec in specs]
        self.positions = np.array([g for g, _ in specs], dtype=np.float64)
        self.sample_rate = first.sample_rate
        kernels = compiled(first.kind, first.hidden_size, first.inputs)
        self.run_bank, self.run_pedal = kernels["run_bank"], kernels["run_pedal"]
        self._warm_up = kernels["warm_up"]
        self._rest = np.stack([rest_state(spec, kernels) for spec in self.specs])
        self.smoother = np.zeros(4)
        self.smoother[:2] = check_knob("gain", gain)
        self._ramp_samples = int(round(SMOOTHING_SECONDS * self.sample_rate))
        self.reset(channels)
        # compiled now, not at the first turn of the knob (a no-op: that model already runs)
        self._warm_up(*self._warm_up_args(), self.running[0], self.running[0])

    @property
    def gain(self):
        return self.smoother[1]

    @gain.setter
    def gain(self, value):
        value = check_knob("gain", value)
        # every model the glide passes starts running (warm) before the glide starts; no
        # sorted(), min() or max() here: they make Python objects, and `klon live` sets the
        # knob from its audio thread
        now, end = self.smoother.item(0), value
        if end < now:
            now, end = end, now
        first = _needed(self.positions, now)[0]
        last = _needed(self.positions, end)[1]
        self._warm_up(*self._warm_up_args(), first, last)
        smoother_set_target(self.smoother, value, self._ramp_samples)

    def _warm_up_args(self):
        return self.rows, self._rest, self.positions, self.smoother, self.running, self.history

    def reset(self, channels=None):
        """Every model back to rest and the Gain at its target; a channel count re-sizes the
        state. Row model * channels + channel holds one model's weights and state for one
        channel."""
        channels = self.channels if channels is None else channels
        self.channels = channels
        smoother_set_target(self.smoother, self.smoother[1], 0)
        self.rows = np.repeat(self._rest, channels, axis=0)
        # the history starts as the zeros of the pre-roll that put every model at rest
        self.history = np.zeros((channels, HISTORY), dtype=np.float32)
        self.running = np.zeros(3, dtype=np.int64)
        self.running[:2] = _needed(self.positions, self.smoother[0])

    def kernel_args(self):
        """What run_bank and run_pedal need besides the audio."""
        return self.rows, self.positions, self.smoother, self.running, self.history

    def process(self, block, out=None):
        """Stream a block, (frames,) or (channels, frames); returns float32 (or fills `out`)."""
        x = np.asarray(block)
        if x.ndim not in (1, 2) or x.dtype.kind != "f":
            raise KlonError(f"audio must be a float array, 1-D or channels x frames; got "
                            f"{x.dtype} with shape {x.shape}")
        x2 = x.reshape(1, -1) if x.ndim == 1 else x
        if x2.shape[0] != self.channels:
            self.reset(x2.shape[0])
        if out is None:
            out = np.empty(x.shape, dtype=np.float32)
        y2 = out if out.ndim == 2 else out.reshape(x2.shape)
        if not self.run_bank(x2, y2, *self.kernel_args()):
            raise KlonError("audio contains NaN or Inf samples")
        return out

    def __call__(self, x):
        """A whole signal from rest."""
        x = np.asarray(x)
        if x.dtype.kind != "f":
            x = x.astype(np.float32)
        self.reset(1 if x.ndim == 1 else x.shape[0])
        return self.process(x)


def _needed(positions, gain):
    """(first, last): the models heard at this Gain (one, or the two that bracket it)."""
    low, fraction = bracket(positions, gain)
    return (low if fraction < 1.0 else low + 1), (low + 1 if fraction > 0.0 else low)


def _shape(spec):
    return f"{spec.kind.upper()}-{spec.hidden_size} with {spec.inputs} input(s)"


def _specs(models):
    """[(gain, spec)] sorted by gain, every gain known and distinct."""
    if isinstance(models, dict):
        pairs = [(check_knob("model gain", g), load_model(m)) for g, m in models.items()]
    else:
        if isinstance(models, (str, os.PathLike)):
            models = model_set_files(models)
        specs = [load_model(m) for m in models]
        if len(specs) == 1:
            return [(specs[0].gain or 0.0, specs[0])]
        for spec in specs:
            if spec.gain is None:
                raise KlonError(f"model {spec.name} has no Gain setting: add \"gain\" to its "
                                f"metadata or name it <name>_<percent>.json")
        pairs = [(spec.gain, spec) for spec in specs]
    if not pairs:
        raise KlonError("a model bank needs at least one model")
    pairs.sort(key=lambda pair: pair[0])
    for (g1, s1), (g2, s2) in itertools.pairwise(pairs):
        if g1 == g2:
            raise KlonError(f"two models for Gain {g1:g}: {s1.name} and {s2.name}")
    return pairs
