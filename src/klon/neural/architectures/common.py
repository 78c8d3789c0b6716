"""What every architecture shares: the float32 row an instance lives in, the fastmath flags of
its compiled step, the pieces of the step's source that do not depend on the gates, and the
shape checks of the file reader.

A GRU-8 step is a few hundred multiply-adds in a chain that cannot be split across time, so
what counts is the latency of one step. The generated source keeps it short:
- the hidden size is a literal, so every loop has a compile-time trip count: the loop over units
  becomes a few SIMD instructions, the sum over the previous state is unrolled;
- one loop over units computes all gates of a unit at once, reading the previous state from
  scalars loaded before the loop, so nothing goes through memory between the gates;
- sums over the previous state are balanced trees (the fastmath flags leave out reassociation,
  so LLVM keeps the tree), half the dependency chain of a running sum;
- everything an instance needs (weights, state) sits in one float32 row at literal offsets, so
  LLVM sees the accesses cannot overlap and needs no run-time alias checks;
- every gate uses the rational tanh of klon.dsp.activations: a sigmoid gate's weights are halved
  in the row, sigmoid(v) = (1 + tanh(v / 2)) / 2 (libm's tanhf would be an opaque call).
"""
from collections.abc import Iterable, Sequence

import numpy as np

from klon.core.errors import KlonError

# fastmath without reassociation (which would flatten the balanced sums back into chains) and
# without reciprocal approximations (a true division is as fast here and more accurate)
FASTMATH = {"nnan", "ninf", "nsz", "contract", "afn"}
ALIGN = 16  # float32 per 64-byte cache line: each block of a row starts on a line
HALF = np.float32(0.5)

Layout = tuple[dict[str, int], int]


def allocate(blocks: Iterable[tuple[str, int]]) -> Layout:
    """({block name: offset}, row length) for (name, size) blocks laid end to end, each
    starting on a cache line."""
    offsets, n = {}, 0
    for name, size in blocks:
        offsets[name] = n
        n += -(-size // ALIGN) * ALIGN
    return offsets, n


def gate_blocks(gates: Sequence[str], hidden: int, inputs: int) -> list[tuple[str, int]]:
    """Per gate g: K<g> (inputs x H input weights), B<g> (H input-side bias), U<g> (H x H
    recurrent weights, row k for unit k of the previous state)."""
    blocks = []
    for g in gates:
        blocks += [(f"K{g}", inputs * hidden), (f"B{g}", hidden), (f"U{g}", hidden * hidden)]
    return blocks


def dense_blocks(hidden: int) -> list[tuple[str, int]]:
    """The Dense layer's W (H) and BD, then the hidden state HS (H)."""
    return [("W", hidden), ("BD", 1), ("HS", hidden)]


def new_row(offsets: dict[str, int], n: int):
    """A zero row of n float32 values and put(block, values), which writes values (float64
    maths, rounded once to float32) at the block's offset."""
    row = np.zeros(n, dtype=np.float32)

    def put(name, values):
        values = np.asarray(values, dtype=np.float64).ravel()
        row[offsets[name]:offsets[name] + values.size] = values

    return row, put


def put_dense(put, spec) -> None:
    put("W", spec.dense_weights)
    put("BD", [spec.dense_bias])


# --- the numba step -----------------------------------------------------------------------

def tree(terms: Sequence[str]) -> str:
    """a + b + c + d as ((a + b) + (c + d)): half the dependency chain."""
    while len(terms) > 1:
        terms = [f"({terms[i]} + {terms[i + 1]})" if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


def inputs_names(inputs: int) -> list[str]:
    """The step's input arguments: u0 the audio, u1.. the knobs."""
    return [f"u{i}" for i in range(inputs)]


def step_head(offsets: dict[str, int], hidden: int, inputs: int) -> list[str]:
    """The step's signature, the previous state read into scalars h0.., the loop over units."""
    lines = ["@njit(fastmath=FASTMATH, cache=CACHE)",
             f"def _step(m, r, {', '.join(inputs_names(inputs))}):"]
    lines += [f"    h{k} = m[r, {offsets['HS'] + k}]" for k in range(hidden)]
    lines.append(f"    for j in range({hidden}):")
    return lines


def input_sum(offsets: dict[str, int], gate: str, hidden: int, inputs: int) -> str:
    """Gate `gate`'s input side for unit j: bias + u0 K[0, j] + u1 K[1, j] + ..."""
    terms = [f"m[r, {offsets['B' + gate]} + j]"] + [
        f"{u} * m[r, {offsets['K' + gate] + i * hidden} + j]"
        for i, u in enumerate(inputs_names(inputs))]
    return " + ".join(terms)


def recurrent_sum(offsets: dict[str, int], gate: str, hidden: int) -> str:
    """Gate `gate`'s recurrent side for unit j, a balanced sum over the previous state."""
    return tree([f"h{k} * m[r, {offsets['U' + gate] + k * hidden} + j]" for k in range(hidden)])


def step_return(offsets: dict[str, int], hidden: int) -> str:
    """The Dense output from the new state."""
    return "    return m[r, {}] + {}".format(offsets["BD"], tree(
        [f"m[r, {offsets['W'] + j}] * m[r, {offsets['HS'] + j}]" for j in range(hidden)]))


def sigmoid(v: np.ndarray) -> np.ndarray:
    """The logistic function in float64, for the reference maths."""
    return 1.0 / (1.0 + np.exp(-v))


# --- the file reader's checks ---------------------------------------------------------------

def check_shapes(kind: str, arrays: dict[str, np.ndarray],
                 shapes: dict[str, tuple[int, ...]]) -> None:
    """Each array has its expected shape, or a KlonError naming it and both shapes."""
    words = {"kernel": "kernel", "recurrent": "recurrent weights", "bias": "bias"}
    for name, shape in shapes.items():
        if arrays[name].shape != shape:
            raise KlonError(f"{kind} {words[name]} have shape {shape_text(arrays[name].shape)}, "
                            f"expected {shape_text(shape)}")


def shape_text(shape: tuple[int, ...]) -> str:
    return " x ".join(map(str, shape)) if shape else "scalar"
