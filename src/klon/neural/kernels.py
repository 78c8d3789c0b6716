"""Compiled kernels for recurrent models, generated per (layer type, hidden size, inputs).

A GRU-8 step is a few hundred multiply-adds in a chain that cannot be split across time, so
what counts is the latency of one step. The generated code keeps it short:
- The hidden size is a literal in the source, so every loop has a compile-time trip count: the
  loop over units becomes a few SIMD instructions, the sum over the previous state is unrolled.
- One loop over units computes all gates of a unit at once (fused), reading the previous state
  from scalars loaded before the loop, so nothing goes through memory between the gates.
- Sums over the previous state are written as balanced trees (the fastmath flags leave out
  reassociation, so LLVM keeps the tree) to halve the dependency chain.
- Everything a model instance needs (weights, state) sits in one float32 row at literal offsets,
  so LLVM sees the accesses cannot overlap and needs no run-time alias checks.
- tanh is the rational function of klon.dsp.activations and the sigmoids are tanh with the
  pre-activation scaled by 1/2 in the stored weights, sigmoid(v) = (1 + tanh(v / 2)) / 2; libm's tanhf would be an opaque
  call per value.

Python describes, the kernels compute: the source is built here once per model shape, compiled
by numba (and cached on disk), and then called once per block.
"""
import functools
import hashlib
import importlib.util
import os
import sys
import types
from pathlib import Path
from typing import NamedTuple

import numba
import numpy as np
from numba import njit

from klon.pedal.stages import run_stage
from klon.dsp.activations import fast_tanh
from klon.dsp.smoothing import smoother_next

# the architectures write the step; the generated modules import FASTMATH and HALF from here,
# and layout, pack and gate_names stay importable from here
from klon.neural.architectures import architecture, gate_names, layout, pack  # noqa: F401
from klon.neural.architectures.common import FASTMATH, HALF  # noqa: F401

HISTORY = 2048  # bank inputs kept per channel for models that start running (46 ms at 44.1 kHz)


class BankState(NamedTuple):
    """What the bank kernels read and write (see klon.neural.bank)."""

    rows: np.ndarray  # float32, row model * channels + channel: one model's weights and state
    positions: np.ndarray  # the models' Gain settings, ascending
    glide: np.ndarray  # the Gain knob's smoother (klon.dsp.smoothing)
    running: np.ndarray  # [first running model, last running model, next history slot]
    history: np.ndarray  # channels x HISTORY: the last inputs, a ring, for warm_up's replay


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


def _step_source(kind, hidden, inputs):
    """Source of `_step(m, r, u0, .., u{k-1})`: one time step of the instance in row r of m;
    updates its state and returns the Dense output. The architecture writes it."""
    return architecture(kind).step_source(hidden, inputs)


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
    the gliding Gain."""
    bank = BankState(*bank)
    m, positions, glide, running, history = (bank.rows, bank.positions, bank.glide,
                                             bank.running, bank.history)
    channels = x.shape[0]
    for t in range(n):
        gain = smoother_next(glide)
        low, fraction = bracket(positions, gain)
        if glide[REMAINING] == 0.0:  # at rest: only the bracketing models run
            running[0] = low if fraction < 1.0 else low + 1
            running[1] = low + 1 if fraction > 0.0 else low
        slot = running[2]
        for c in range(channels):
            u0 = np.float32(x[c, t])
            history[c, slot] = u0
            total = 0.0
            for model in range(running[0], running[1] + 1):
                out = _step(m, model * channels + c, {bank_inputs})
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
def run_bank(x, y, bank):
    if not all_finite(x):
        return False
    _bank(x, y, x.shape[1], bank)
    return True


@njit(error_model="numpy", cache=CACHE)
def run_pedal(x, y, work, bank, stages):
    """The neural engine's pedal: input buffer -> model bank -> treble control -> output
    stage (the SharedStages), one block in one call. The state arrives as plain tuples
    (klon.core.kernel_state) and is named here."""
    if not all_finite(x):
        return False
    stages = name_stages(stages)
    n = x.shape[1]
    a = work[:, :n]
    for c in range(x.shape[0]):
        for t in range(n):
            a[c, t] = x[c, t]
    run_stage(INPUT_BUFFER, a, a, stages.input_buffer)
    _bank(a, a, n, bank)
    run_stage(TONE, a, a, stages.tone)
    run_stage(OUTPUT_STAGE, a, a, stages.output_stage)
    for c in range(x.shape[0]):
        for t in range(n):
            y[c, t] = a[c, t]
    return True
'''


_HEADER = '''"""Generated by klon.neural.kernels: {kind}-{hidden} with {inputs} input(s). Do not edit."""
import numpy as np
from numba import njit

from klon.pedal.stages import INPUT_BUFFER, OUTPUT_STAGE, TONE, name_stages, run_stage
from klon.dsp.smoothing import CURRENT, REMAINING, smoother_next
from klon.neural.kernels import (
    FASTMATH, HALF, HISTORY, BankState, all_finite, bracket, fast_tanh,
)

# only the step is fastmath: in a function compiled with no-NaN/no-Inf flags the NaN/Inf checks
# on the input would be optimised away
CACHE = {cache}

'''


@functools.cache
def compiled(kind, hidden, inputs):
    """The kernels for one model shape: run_model, run_mono, run_bank, run_pedal and warm_up.

    run_bank and run_pedal feed the audio to input 0 and, for two-input models, the smoothed Gain
    to input 1 (a Gain-conditioned model)."""
    explicit = ", ".join(f"np.float32(x[c, {i}, t])" for i in range(inputs))
    bank = "u0" if inputs == 1 else "u0, np.float32(gain)"  # bank models have 1 or 2 inputs
    body = "\n".join([_step_source(kind, hidden, inputs),
                      _DRIVERS.format(explicit_inputs=explicit, bank_inputs=bank)])
    module = _load(f"{kind}{hidden}x{inputs}",
                   lambda cache: _HEADER.format(kind=kind.upper(), hidden=hidden, inputs=inputs,
                                                cache=cache) + body)
    return {name: getattr(module, name) for name in ("run_model", "run_mono", "run_bank",
                                                     "run_pedal", "warm_up")}


def _load(stem, source):
    """Import generated source. Written to a file in the cache folder (named by a hash of it and
    of everything it calls), numba can cache its machine code there: a new process then loads
    the kernels in milliseconds instead of compiling them for seconds. Where no folder can be
    written, the source runs in memory and compiles in every process."""
    text = source(True)
    key = hashlib.sha1("\n".join([text, numba.__version__, *_DEPENDENCIES]).encode())
    name = f"klon_{stem}_{key.hexdigest()[:16]}"
    folder = _cache_folder()
    if folder is not None:
        path = folder / f"{name}.py"
        try:
            if not path.is_file():
                temporary = folder / f"{name}.{os.getpid()}.tmp"
                temporary.write_text(text)
                os.replace(temporary, path)  # whole or not at all, even with racing processes
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


def _cache_folder():
    """$KLON_CACHE_DIR, else $XDG_CACHE_HOME/klon, else ~/.cache/klon; None if unusable."""
    folder = os.environ.get("KLON_CACHE_DIR") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "klon"
    folder = Path(folder) / "kernels"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None


# the generated kernels call into these modules: their text is part of the cache key, so a
# changed dependency never meets stale machine code
_DEPENDENCIES = tuple(Path(module.__file__).read_text() for module in (
    sys.modules[__name__], sys.modules[run_stage.__module__], sys.modules[smoother_next.__module__],
    sys.modules[fast_tanh.__module__]))
