"""Compiled kernels for recurrent models, generated per (architecture, hidden size, inputs).

The architecture writes one time step (`_step`, see klon.neural.architectures.common for why it
is shaped as it is); this module adds the drivers that stream a block through one model, the
bank that mixes the models bracketing the gliding Gain, and the neural engine's pedal chain
with the shared stages around the bank. Python describes, the kernels compute: the source is
built here once per model shape, compiled by numba (and cached on disk), then called once per
block.
"""
import functools
import hashlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import NamedTuple

import numba
import numpy as np
from numba import njit

from klon.core import glide
from klon.core.files import atomic_write
from klon.core.paths import cache_folder
from klon.dsp import activations, resampler
from klon.neural.architectures import architecture, common
from klon.pedal import stages

HISTORY = 2048  # bank inputs kept per channel for models that start running (46 ms at 44.1 kHz)
# a Gain-conditioned model's silence twin runs this many samples past a glide or a reset: its
# state settles to within 3e-8 V of its output by then (circuit-cond, Gain 0 -> 1)
TWIN_SETTLE = 4096


class BankState(NamedTuple):
    """What the bank kernels read and write (see klon.neural.bank)."""

    rows: np.ndarray  # float32, row model * channels + channel: one model's weights and state
    positions: np.ndarray  # the models' Gain settings, ascending
    glide: np.ndarray  # the Gain knob's smoother (klon.core.glide)
    running: np.ndarray  # [first running model, last running model, next history slot,
    # samples the silence twin still runs]
    history: np.ndarray  # channels x HISTORY: the last inputs, a ring, for warm_up's replay
    offsets: np.ndarray  # float32 models x 1: each model's output in silence, subtracted from
    # its output (a Gain-conditioned model's: its silence twin's latest output)


@njit(cache=True)
def all_finite(x):
    for v in x.flat:
        if not np.isfinite(v):
            return False
    return True


@njit(inline="always")
def bracket(positions, value):
    """(index, fraction): value lies between positions[index] and positions[index + 1]
    (positions ascending); clamped to the ends."""
    last = positions.shape[0] - 1
    if value <= positions[0] or last == 0:
        return 0, 0.0
    if value >= positions[last]:
        return last - 1, 1.0
    i = 0
    while value >= positions[i + 1]:
        i += 1
    return i, (value - positions[i]) / (positions[i + 1] - positions[i])


_DRIVERS = '''
@njit(error_model="numpy", cache=CACHE)
def run_model(x, y, m):
    """x: channels x inputs x frames, y: channels x frames; row c of m is channel c. Returns
    False (touching nothing) if x holds NaN or Inf."""
    if not all_finite(x):
        return False
    for t in range(x.shape[2]):
        for c in range(x.shape[0]):
            y[c, t] = _step(m, c, {explicit_inputs})
    return True


@njit(error_model="numpy", cache=CACHE)
def run_mono(x, y, m):
    """run_model for the commonest call, one channel of a one-input model (only): x, y 1-D."""
    if not all_finite(x):
        return False
    for t in range(x.shape[0]):
        y[t] = _step(m, 0, np.float32(x[t]))
    return True


@njit(error_model="numpy", cache=CACHE)
def _bank(x, y, n, bank):
    """The first n frames of x (channels x frames) through the running models of the BankState
    (row model * channels + channel of its rows), mixing the two whose Gain positions bracket
    the gliding Gain. A Gain-conditioned model's silence twin (the last row) runs on zeros
    along the same Gain while it glides and TWIN_SETTLE samples after; its output is what the
    model's output has subtracted."""
    bank = BankState(*bank)
    m, positions, glide, running, history = (bank.rows, bank.positions, bank.glide,
                                             bank.running, bank.history)
    offsets = bank.offsets
    channels = x.shape[0]
    gliding = glide[REMAINING] > 0.0  # at rest the Gain, its models and their weights hold
    gain = glide[CURRENT]
    low, fraction = bracket(positions, gain)
    for t in range(n):
        if gliding:
            gain = smoother_next(glide)
            low, fraction = bracket(positions, gain)
            gliding = glide[REMAINING] > 0.0
        if not gliding:  # at rest: only the bracketing models run
            running[0] = low if fraction < 1.0 else low + 1
            running[1] = low + 1 if fraction > 0.0 else low
{twin}
        slot = running[2]
        for c in range(channels):
            u0 = np.float32(x[c, t])
            history[c, slot] = u0
            total = 0.0
            for model in range(running[0], running[1] + 1):
                out = _step(m, model * channels + c, {bank_inputs}) - offsets[model, 0]
                if model == low:
                    total += (1.0 - fraction) * out
                elif model == low + 1:
                    total += fraction * out
            y[c, t] = total
        running[2] = (slot + 1) % HISTORY


@njit(error_model="numpy", cache=CACHE)
def warm_up(bank, rest, first, last):
    """Start models first..last running: each one not running yet starts from rest and replays
    the history, so it joins in the state it would have had if it had run all along."""
    bank = BankState(*bank)
    m, running, history = bank.rows, bank.running, bank.history
    channels = history.shape[0]
    gain = bank.glide[CURRENT]
    for model in range(first, last + 1):
        if not running[0] <= model <= running[1]:
            for c in range(channels):
                m[model * channels + c, :] = rest[model, :]
    # every joining model and channel steps in the same loop: the CPU overlaps their chains
    for i in range(HISTORY):
        slot = (running[2] + i) % HISTORY
        for model in range(first, last + 1):
            if not running[0] <= model <= running[1]:
                for c in range(channels):
                    u0 = history[c, slot]
                    _step(m, model * channels + c, {bank_inputs})
    running[0] = min(running[0], first)
    running[1] = max(running[1], last)


@njit(error_model="numpy", cache=CACHE)
def _resampled_bank(x, y, n, mid, bank, into, back):
    """n host-rate frames of x through the bank at its models' rate into y (which may be x):
    converted to the models' rate (into, m frames into mid), the bank, and back (exactly n
    frames: dsp.resampler.around_model)."""
    m = resample(x, n, mid, mid.shape[1], into)
    _bank(mid, mid, m, bank)
    resample(mid, m, y, n, back)


@njit(error_model="numpy", cache=CACHE)
def _any_rate_bank(x, y, n, bank, resampling):
    """The bank on n frames at the models' rate (resampling None), else between the
    converters of `resampling` (models' frames buffer, into, back)."""
    if resampling is None:  # (numba compiles one branch per argument type)
        _bank(x, y, n, bank)
    else:
        _resampled_bank(x, y, n, resampling[0], bank, resampling[1], resampling[2])


@njit(error_model="numpy", cache=CACHE)
def run_bank(x, y, bank, resampling):
    if not all_finite(x):
        return False
    _any_rate_bank(x, y, x.shape[1], bank, resampling)
    return True


@njit(error_model="numpy", cache=CACHE)
def run_pedal(x, y, work, bank, stages, resampling):
    """The neural engine's pedal: input buffer -> model bank -> treble control -> output
    stage (the SharedStages), one block in one call; `resampling` None at the models' rate,
    else (models' frames buffer, into, back): the bank then runs at its models' rate between
    the converters. The state arrives as plain tuples (klon.core.kernel_state) and is named
    here."""
    if not all_finite(x):
        return False
    stages = name_stages(stages)
    n = x.shape[1]
    a = work[:, :n]
    for c in range(x.shape[0]):
        for t in range(n):
            a[c, t] = x[c, t]
    run_stage(INPUT_BUFFER, a, a, stages.input_buffer)
    _any_rate_bank(a, a, n, bank, resampling)
    run_stage(TONE, a, a, stages.tone)
    run_stage(OUTPUT_STAGE, a, a, stages.output_stage)
    for c in range(x.shape[0]):
        for t in range(n):
            y[c, t] = a[c, t]
    return True
'''


_TWIN = '''        if glide[REMAINING] > 0.0:
            running[3] = TWIN_SETTLE
        if running[3] > 0:
            offsets[0, 0] = _step(m, m.shape[0] - 1, np.float32(0.0), np.float32(gain))
            running[3] -= 1'''


_HEADER = '''"""Generated by klon.neural.kernels for {kind}-{hidden}, {inputs} input(s)."""
import numpy as np
from numba import njit

from klon.dsp.activations import fast_tanh
from klon.core.glide import CURRENT, REMAINING, smoother_next
from klon.dsp.resampler import resample
from klon.neural.architectures.common import FASTMATH, HALF
from klon.neural.kernels import HISTORY, TWIN_SETTLE, BankState, all_finite, bracket
from klon.pedal.stages import INPUT_BUFFER, OUTPUT_STAGE, TONE, name_stages, run_stage

# only the step is fastmath: in a function compiled with no-NaN/no-Inf flags the NaN/Inf checks
# on the input would be optimised away
CACHE = {cache}

'''


@functools.cache
def compiled(kind, hidden, inputs):
    """The kernels for one model shape: run_model, run_mono, run_bank, run_pedal and warm_up
    (the bank and pedal at any host rate: pass the converters, or None at the models' rate).

    run_bank and run_pedal feed the audio to input 0 and, for two-input models, the smoothed Gain
    to input 1 (a Gain-conditioned model)."""
    explicit = ", ".join(f"np.float32(x[c, {i}, t])" for i in range(inputs))
    bank = "u0" if inputs == 1 else "u0, np.float32(gain)"  # bank models have 1 or 2 inputs
    twin = "" if inputs == 1 else _TWIN
    body = "\n".join([architecture(kind).step_source(hidden, inputs),
                      _DRIVERS.format(explicit_inputs=explicit, bank_inputs=bank, twin=twin)])
    module = _load(f"{kind}{hidden}x{inputs}",
                   lambda cache: _HEADER.format(kind=kind.upper(), hidden=hidden, inputs=inputs,
                                                cache=cache) + body)
    return {name: getattr(module, name) for name in (
        "run_model", "run_mono", "run_bank", "run_pedal", "warm_up")}


def _load(stem, source):
    """Import generated source. Written to a file in the cache folder (named by a hash of it and
    of everything it calls), numba can cache its machine code there: a new process then loads
    the kernels in milliseconds instead of compiling them for seconds. Where no folder can be
    written, the source runs in memory and compiles in every process."""
    text = source(True)
    key = hashlib.sha1("\n".join([text, numba.__version__, *_DEPENDENCIES]).encode())
    name = f"klon_{stem}_{key.hexdigest()[:16]}"
    folder = cache_folder()
    if folder is not None:
        path = folder / f"{name}.py"
        try:
            if not path.is_file():
                atomic_write(path, text)  # whole or not at all, even with racing processes
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # numba finds a cached kernel's module by name
            spec.loader.exec_module(module)
            return module
        except OSError:
            pass
    module = types.ModuleType(name)
    exec(compile(source(False), f"<{name}>", "exec"), module.__dict__)  # noqa: S102 - our source
    return module


# the generated kernels call into these modules: their text is part of the cache key, so a
# changed dependency never meets stale machine code
_DEPENDENCIES = tuple(Path(module.__file__).read_text() for module in (
    sys.modules[__name__], stages, glide, activations, common, resampler))
