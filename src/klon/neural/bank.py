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

Silence in, silence out: a model's rest is its silence fixed point (klon.neural.model.
silence_state: run on zeros until it stops moving, once per model at load), and its output
there is subtracted from its output, so the bank maps 0 V to 0 V like the circuit's gain stage
and the pedal starts (and restarts after `reset()`) silent. Without that, a published model's
offset (up to 15 mV) stepped into the output stage at the start: a click of up to 0.084 V at
Gain 1, Treble 1, Level 1. A Gain-conditioned model (two inputs: the audio and the gliding
Gain) has a silence state and output per Gain, and its state follows a Gain move with its own
dynamics: in silence a glide from 0 to 1 moved its output by 67 mV (circuit-cond). So it has a
silence twin: a copy of the model run on zeros along the same Gain, whose output is subtracted
from the model's. The twin runs while the Gain glides and TWIN_SETTLE samples after (and after
a reset), then holds its output, the model's output in silence at that Gain. Both start at the
silence state for the starting Gain (known on a grid of REST_POINTS Gains, interpolated), so
in silence the model and its twin are the same computation: 0 V in gives exactly 0 V out, knob
moves included, for one extra model step per sample (not per channel) while the knob moves.
"""
import itertools
import os
from pathlib import Path
from typing import Any

import numpy as np

from klon.core.errors import KlonError
from klon.core.glide import CURRENT, TARGET, smoother_set_target
from klon.core.kernel_state import plain
from klon.core.paths import SHIPPED_MODELS, shipped_sets
from klon.core.processor import GLIDE_SECONDS, Knob, Processor, check_knob
from klon.dsp.resampler import around_model, check_rate
from klon.neural.architectures import architecture
from klon.neural.kernels import HISTORY, TWIN_SETTLE, BankState, bracket, compiled
from klon.neural.model import load_model, silence_state

REST_POINTS = 17  # Gains 0, 1/16, .. 1 where a conditioned model's silence state is known


def model_set_files(models: str | os.PathLike) -> list[Path]:
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


class ModelBank(Processor):
    """Gain -> model: the neural engine's gain stage. `models`: a folder (or shipped set name),
    or a list of files/ModelSpecs, or a dict {gain: file or ModelSpec}. Each model's Gain comes
    from the dict key, else its metadata, else its file name (centaur_25.json: 0.25).

    One model alone is used at every Gain; a model with two inputs gets the gliding Gain as its
    second input (a Gain-conditioned model). Outside the bank's range the nearest model plays.

    `sample_rate` is the host's (default: the models'). At another rate the models run at
    their own inside streaming converters (klon.dsp.resampler.around_model), so the stage lags
    by `latency` host samples; the Gain glides in the models' samples, over the same 50 ms.
    """

    engine = "neural"
    refuses_non_finite = True  # run_bank checks every sample as it reads it
    gain = Knob("Gain, 0..1: picks (and mixes) the models trained nearest to it")

    def __init__(self, models: Any, gain: float = 0.5, channels: int = 1,
                 sample_rate: float | None = None):
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
        self.model_rate = first.sample_rate
        self.sample_rate = self.model_rate if sample_rate is None else float(sample_rate)
        self.resampled = self.sample_rate != self.model_rate
        if self.resampled:
            check_rate(self.model_rate)  # a whole number of Hz, or the converters cannot run
        kernels = compiled(first.kind, first.hidden_size, first.inputs)
        self._run_bank, self._run_pedal = kernels["run_bank"], kernels["run_pedal"]
        self._warm_up = kernels["warm_up"]
        self.init_knobs(gain=gain)
        self.glide_samples = int(round(GLIDE_SECONDS * self.model_rate))  # the kernel's clock
        self._rests, self._offsets = rest_rows(self.specs, kernels)
        self._state_columns = np.concatenate([
            np.arange(o, o + first.hidden_size) for o in state_offsets(first)])
        self.channels = 0
        self.reset(channels)
        # compiled now, not at the first turn of the knob (a no-op: that model already runs)
        self._warm_up(self.kernel_args, self._rest, self.running[0], self.running[0])

    @property
    def conditioned(self) -> bool:
        """One model with the Gain as its second input (not a bank of fixed models)."""
        return self.specs[0].inputs == 2

    @property
    def tone_rate(self) -> float:
        """The rate the pedal's treble control runs at beside this stage: the host rate."""
        return self.sample_rate

    def knob_moving(self, name: str, value: float) -> None:
        """Every model the Gain's glide passes starts running (warm) before the glide starts.
        No sorted(), min() or max() here: they make Python objects, and `klon live` sets the
        knob from its audio thread."""
        now, end = self.glide.item(CURRENT), value
        if end < now:
            now, end = end, now
        first = _needed(self.positions, now)[0]
        last = _needed(self.positions, end)[1]
        self._warm_up(self.kernel_args, self._rest, first, last)

    def reset(self, channels: int | None = None) -> None:
        """Back to rest, as if just switched on: every model at its silence state (so the
        output starts silent) and the Gain at its value (a glide in progress ends there at
        once, as in the circuit engine); a channel count re-sizes the state. Row
        model * channels + channel holds one model's weights and state for one channel."""
        channels = self.channels if channels is None else channels
        if self.resampled and channels != self.channels:
            self.into, self.back, self.latency = around_model(self.sample_rate,
                                                              self.model_rate, channels)
        elif self.resampled:
            self.into.reset()
            self.back.reset()
        self.channels = channels
        self.glide = self.glides["gain"]
        smoother_set_target(self.glide, self.glide.item(TARGET), 0)
        self._rest = rest_at(self._rests, self.glide.item(CURRENT), self._state_columns)
        # the history starts as the zeros of the pre-roll that put every model at rest
        self.running = np.zeros(4, dtype=np.int64)
        self.running[:2] = _needed(self.positions, self.glide.item(CURRENT))
        rows, offsets = np.repeat(self._rest, channels, axis=0), self._offsets
        if self.conditioned:  # the silence twin: the last row, settling from the same rest
            rows = np.concatenate([rows, self._rest])
            offsets = np.zeros((1, 1), dtype=np.float32)
            self.running[3] = TWIN_SETTLE
        self.kernel_state = BankState(rows, self.positions, self.glide, self.running,
                                      np.zeros((channels, HISTORY), dtype=np.float32), offsets)
        self.kernel_args = plain(self.kernel_state)
        self.prepare(0)

    def prepare(self, frames: int) -> None:
        """Work buffers for blocks of up to `frames` (grown, never shrunk): the pedal chain's,
        and at another rate than the models' the models' frames of a block."""
        frames = max(frames, 256)
        self.work = np.zeros((self.channels, frames))
        self.resampling = None
        if self.resampled:
            self.model_frames = np.zeros((self.channels, self.into.max_outputs(frames)))
            self.resampling = (self.model_frames, self.into.kernel_args, self.back.kernel_args)

    def render(self, x: np.ndarray, y: np.ndarray) -> None:
        if x.shape[1] > self.work.shape[1]:
            self.prepare(x.shape[1])
        if not self._run_bank(x, y, self.kernel_args, self.resampling):
            raise KlonError("audio contains NaN or Inf samples")

    def run_pedal(self, x: np.ndarray, y: np.ndarray, stages: np.ndarray) -> bool:
        """The whole neural pedal on a checked block (x, y channels x frames), this bank
        between the shared stages (klon.pedal.stages.share_memory's array); False if x holds
        NaN or Inf."""
        if x.shape[1] > self.work.shape[1]:
            self.prepare(x.shape[1])
        return self._run_pedal(x, y, self.work, self.kernel_args, stages, self.resampling)


def rest_rows(specs, kernels: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rows, offsets): where each model of a bank rests (its packed row, float32, models x
    points x row: the silence state, at one point for a one-input model, at REST_POINTS Gains
    0..1 for a Gain-conditioned one) and, for one-input models, the output each subtracts
    there (float32, models x 1; a conditioned model's comes from its twin: zeros). See the
    module's docstring. The C export bakes the same values."""
    conditioned = specs[0].inputs > 1
    grid = [(g,) for g in np.linspace(0, 1, REST_POINTS)] if conditioned else [()]
    settled = [[silence_state(spec, kernels, knobs) for knobs in grid] for spec in specs]
    rows = np.array([[row for row, _ in model] for model in settled], dtype=np.float32)
    offsets = np.array([[0.0 if conditioned else model[0][1]] for model in settled],
                       dtype=np.float32)
    return rows, offsets


def state_offsets(spec) -> list[int]:
    """Where the state vectors start in the model's packed row."""
    offsets = architecture(spec.kind).layout(spec.hidden_size, spec.inputs)[0]
    return [offsets[block] for block in architecture(spec.kind).STATE_BLOCKS]


def rest_at(rests: np.ndarray, gain: float, columns: np.ndarray) -> np.ndarray:
    """Each model's rest row at this Gain (models x row): its one rest, or the state columns
    interpolated linearly between the two grid points bracketing the Gain (float64 maths,
    rounded once; the weights are those of the lower point, the same at every point)."""
    points = rests.shape[1]
    if points == 1:
        return rests[:, 0].copy()
    position = gain * (points - 1)
    i = min(int(position), points - 2)
    fraction = position - i
    rows = rests[:, i].copy()
    low = rests[:, i, columns].astype(np.float64)
    high = rests[:, i + 1, columns].astype(np.float64)
    rows[:, columns] = low + fraction * (high - low)
    return rows


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
