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

# fastmath without reassociation (which would flatten the balanced sums back into chains) and
# without reciprocal approximations (a true division is as fast here and more accurate)
FASTMATH = {"nnan", "ninf", "nsz", "contract", "afn"}
ALIGN = 16  # float32 per 64-byte cache line: each block of a row starts on a line

HALF = np.float32(0.5)
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


def gate_names(kind):
    return ("z", "r", "c") if kind == "gru" else ("i", "f", "c", "o")


def layout(kind, hidden, inputs):
    """Offsets of each block in an instance's float32 row, and the row length.

    Per gate g: K<g> (inputs x H input weights), B<g> (H input-side bias), U<g> (H x H recurrent
    weights, row k for unit k of the previous state); then the Dense W (H) and BD, the state HS
    (H) and, for LSTM, the cell CS (H). GRU's candidate keeps its recurrent bias apart (RC)."""
    blocks = []
    for g in gate_names(kind):
        blocks += [(f"K{g}", inputs * hidden), (f"B{g}", hidden), (f"U{g}", hidden * hidden)]
    if kind == "gru":
        blocks.append(("RC", hidden))
    blocks += [("W", hidden), ("BD", 1), ("HS", hidden)]
    if kind == "lstm":
        blocks.append(("CS", hidden))
    offsets, n = {}, 0
    for name, size in blocks:
        offsets[name] = n
        n += -(-size // ALIGN) * ALIGN
    return offsets, n


def pack(spec):
    """A model's weights as one float32 row (state zero), in the kernels' layout: sigmoid gates
    pre-scaled by 1/2, and GRU's two biases folded where the maths allows."""
    H, k = spec.hidden_size, spec.inputs
    offsets, n = layout(spec.kind, H, k)
    row = np.zeros(n, dtype=np.float32)

    def put(name, values):
        values = np.asarray(values, dtype=np.float64).ravel()
        row[offsets[name]:offsets[name] + values.size] = values

    for i, g in enumerate(gate_names(spec.kind)):
        cols = slice(i * H, (i + 1) * H)
        # sigmoid(v) = (1 + tanh(v / 2)) / 2: a sigmoid gate's weights and bias are halved
        if spec.kind == "lstm":
            scale = 1.0 if g == "c" else 0.5
            put(f"K{g}", scale * spec.kernel[:, cols])
            put(f"B{g}", scale * spec.bias[cols])
            put(f"U{g}", scale * spec.recurrent[:, cols])
        elif g == "c":
            # the candidate's r * (h U + b1) is kept as g + g tanh(..) with g = (h U + b1) / 2
            put("Kc", spec.kernel[:, cols])
            put("Bc", spec.bias[0, cols])
            put("Uc", 0.5 * spec.recurrent[:, cols])
            put("RC", 0.5 * spec.bias[1, cols])
        else:  # z and r: input and recurrent biases simply add
            put(f"K{g}", 0.5 * spec.kernel[:, cols])
            put(f"B{g}", 0.5 * (spec.bias[0, cols] + spec.bias[1, cols]))
            put(f"U{g}", 0.5 * spec.recurrent[:, cols])
    put("W", spec.dense_weights)
    put("BD", [spec.dense_bias])
    return row


def _tree(terms):
    """a + b + c + d as ((a + b) + (c + d)): half the dependency chain."""
    while len(terms) > 1:
        terms = [f"({terms[i]} + {terms[i + 1]})" if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


def _step_source(kind, hidden, inputs):
    """Source of `_step(m, r, u0, .., u{k-1})`: one time step of the instance in row r of m;
    updates its state and returns the Dense output."""
    o, _ = layout(kind, hidden, inputs)
    H = hidden
    us = [f"u{i}" for i in range(inputs)]
    lines = ["@njit(fastmath=FASTMATH, cache=CACHE)", f"def _step(m, r, {', '.join(us)}):"]
    lines += [f"    h{k} = m[r, {o['HS'] + k}]" for k in range(H)]

    def pre(g):
        terms = [f"m[r, {o['B' + g]} + j]"] + [f"{u} * m[r, {o['K' + g] + i * H} + j]"
                                                for i, u in enumerate(us)]
        return " + ".join(terms)

    def recur(g):
        return _tree([f"h{k} * m[r, {o['U' + g] + k * H} + j]" for k in range(H)])

    lines.append(f"    for j in range({H}):")
    body = lines.append
    if kind == "gru":
        body(f"        tz = fast_tanh(({pre('z')}) + {recur('z')})")
        body(f"        tr = fast_tanh(({pre('r')}) + {recur('r')})")
        body(f"        gc = m[r, {o['RC']} + j] + {recur('c')}")
        body(f"        c = fast_tanh((({pre('c')}) + gc) + gc * tr)")
        # h' = z h + (1 - z) c, z = (1 + tz) / 2
        body(f"        m[r, {o['HS']} + j] = c * (HALF - HALF * tz) + "
             f"(HALF + HALF * tz) * m[r, {o['HS']} + j]")
    else:
        for g in ("i", "f", "c", "o"):
            body(f"        t{g} = fast_tanh(({pre(g)}) + {recur(g)})")
        body(f"        cell = (HALF + HALF * tf) * m[r, {o['CS']} + j] + (HALF + HALF * ti) * tc")
        body(f"        m[r, {o['CS']} + j] = cell")
        body(f"        m[r, {o['HS']} + j] = (HALF + HALF * to) * fast_tanh(cell)")
    lines.append("    return m[r, {}] + {}".format(
        o["BD"], _tree([f"m[r, {o['W'] + j}] * m[r, {o['HS'] + j}]" for j in range(H)])))
    return "\n".join(lines)


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
    m, running, history = bank.rows, bank.running, bank.history
    channels = history.shape[0]
    gain = bank.glide[0]
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
    stage (the SharedStages), one block in one call."""
    if not all_finite(x):
        return False
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

from klon.pedal.stages import INPUT_BUFFER, OUTPUT_STAGE, TONE, run_stage
from klon.dsp.smoothing import REMAINING, smoother_next
from klon.neural.kernels import FASTMATH, HALF, HISTORY, all_finite, bracket, fast_tanh

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
