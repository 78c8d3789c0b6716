"""GRU: Keras' reset_after form (the one RTNeural runs and the original plugin shipped).

    z = sigmoid(x Kz + bz + h Uz + b'z)              update gate
    r = sigmoid(x Kr + br + h Ur + b'r)              reset gate
    c = tanh(x Kc + bc + r * (h Uc + b'c))           candidate
    h' = z h + (1 - z) c

The file holds the gates' columns side by side, z | r | c (Keras calls the candidate h), and two
bias rows: b on the input side, b' on the recurrent side. torch keeps the gates as r | z | n in
rows and its two biases the same way.
"""
import numpy as np

from klon.core.errors import KlonError
from klon.neural.architectures import c_source as cs
from klon.neural.architectures import common

KIND = "gru"
GATES = ("z", "r", "c")  # the file's column order
STATE_BLOCKS = ("HS",)  # the state in the row: h
C_UNIT_FIELDS = (("rc", "RC", "the candidate's recurrent bias, halved"),)  # m->rc[j] in C


def weight_shapes(hidden: int, inputs: int) -> dict[str, tuple[int, ...]]:
    """The recurrent layer's three arrays in the file."""
    return {"kernel": (inputs, 3 * hidden), "recurrent": (hidden, 3 * hidden),
            "bias": (2, 3 * hidden)}


def check_weights(arrays: dict[str, np.ndarray], hidden: int, inputs: int) -> None:
    """The shapes of weight_shapes; a one-row bias gets its own message."""
    shapes = weight_shapes(hidden, inputs)
    common.check_shapes(KIND, arrays, {"kernel": shapes["kernel"],
                                       "recurrent": shapes["recurrent"]})
    if arrays["bias"].shape == (3 * hidden,):
        raise KlonError("GRU with one bias row (Keras reset_after=False) is not supported: "
                        "klon runs the reset_after=True form (bias 2 x 3H)")
    common.check_shapes(KIND, arrays, {"bias": shapes["bias"]})


def layout(hidden: int, inputs: int) -> common.Layout:
    """The gates' blocks, then RC (the candidate's recurrent bias, kept apart because r
    multiplies it), the Dense layer and the state HS."""
    return common.allocate(common.gate_blocks(GATES, hidden, inputs) + [("RC", hidden)]
                           + common.dense_blocks(hidden))


def pack(spec) -> np.ndarray:
    """The model as one float32 row, state zero: z and r halved (sigmoid through tanh), their
    two biases added; the candidate's r * (h Uc + b'c) kept as g + g tanh(..) with
    g = (h Uc + b'c) / 2."""
    H = spec.hidden_size
    row, put = common.new_row(*layout(H, spec.inputs))
    for i, g in enumerate(GATES):
        cols = slice(i * H, (i + 1) * H)
        if g == "c":
            put("Kc", spec.kernel[:, cols])
            put("Bc", spec.bias[0, cols])
            put("Uc", 0.5 * spec.recurrent[:, cols])
            put("RC", 0.5 * spec.bias[1, cols])
        else:  # z and r: input and recurrent biases simply add
            put(f"K{g}", 0.5 * spec.kernel[:, cols])
            put(f"B{g}", 0.5 * (spec.bias[0, cols] + spec.bias[1, cols]))
            put(f"U{g}", 0.5 * spec.recurrent[:, cols])
    common.put_dense(put, spec)
    return row


def step_source(hidden: int, inputs: int) -> str:
    """Source of the numba `_step(m, r, u0, ..)`: one time step of the instance in row r of m;
    updates its state and returns the Dense output."""
    o, _ = layout(hidden, inputs)
    lines = common.step_head(o, hidden, inputs)

    def inputs_of(g):
        return common.input_sum(o, g, hidden, inputs)

    def recurrent_of(g):
        return common.recurrent_sum(o, g, hidden)

    lines += [f"        tz = fast_tanh(({inputs_of('z')}) + {recurrent_of('z')})",
              f"        tr = fast_tanh(({inputs_of('r')}) + {recurrent_of('r')})",
              f"        gc = m[r, {o['RC']} + j] + {recurrent_of('c')}",
              f"        c = fast_tanh((({inputs_of('c')}) + gc) + gc * tr)",
              # h' = z h + (1 - z) c, z = (1 + tz) / 2
              f"        m[r, {o['HS']} + j] = c * (HALF - HALF * tz) + "
              f"(HALF + HALF * tz) * m[r, {o['HS']} + j]",
              common.step_return(o, hidden)]
    return "\n".join(lines)


def c_step(hidden: int, inputs: int) -> str:
    """C of `klon_step`: the numba step, elementwise over the units, the activations in
    blocks."""
    H = hidden
    lines = cs.step_head(len(GATES), H, inputs)
    # gate 2 holds the candidate's g = rc + h Uc until r is known
    lines += cs.either(
        [f"        a[j] = {cs.pre_activation(0, H, inputs, True)};",
         f"        a[{H} + j] = {cs.pre_activation(1, H, inputs, True)};",
         f"        a[{2 * H} + j] = {cs.plus('m->rc[j]', cs.pairs(cs.recurrent_terms(2, H)))};"],
        [f"        a[j] = {cs.pre_activation(0, H, inputs, False)};",
         f"        a[{H} + j] = {cs.pre_activation(1, H, inputs, False)};",
         f"        a[{2 * H} + j] = {cs.chain('m->rc[j]', cs.recurrent_terms(2, H))};"])
    lines += ["    }", f"    klon_tanh_block(a, {2 * H});",
              f"    for (j = 0; j < {H}; j++) {{",
              f"        const float g = a[{2 * H} + j];"]
    lines += cs.either(
        [f"        a[{2 * H} + j] = fmaf(g, a[{H} + j], {cs.input_sum(2, inputs, True)} + g);"],
        [f"        a[{2 * H} + j] = {cs.input_sum(2, inputs, False)} + g + g * a[{H} + j];"])
    lines += ["    }", f"    klon_tanh_block(a + {2 * H}, {H});",
              "    /* h' = z h + (1 - z) c with z = (1 + tanh) / 2 */",
              f"    for (j = 0; j < {H}; j++) {{"]
    update = (("0.5f + 0.5f * a[j]", "state[j]"), (f"a[{2 * H} + j]", "0.5f - 0.5f * a[j]"))
    lines += cs.either([f"        state[j] = {cs.blend(*update, True)};"],
                       [f"        state[j] = {cs.blend(*update, False)};"])
    lines.append("    }")
    return cs.join(lines + cs.step_tail(H, inputs))


# --- float64 reference maths (klon.neural.reference) ----------------------------------------

def reference_state(batch: int, hidden: int) -> tuple[np.ndarray, ...]:
    return (np.zeros((batch, hidden)),)


def reference_step(spec, u: np.ndarray, state: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """One step in float64 for a batch: u batch x inputs, state (h,) -> (h',)."""
    (h,) = state
    H = spec.hidden_size
    a = u @ spec.kernel + spec.bias[0]
    g = h @ spec.recurrent + spec.bias[1]
    z = common.sigmoid(a[:, :H] + g[:, :H])
    r = common.sigmoid(a[:, H:2 * H] + g[:, H:2 * H])
    candidate = np.tanh(a[:, 2 * H:] + r * g[:, 2 * H:])
    return (z * h + (1.0 - z) * candidate,)


# --- training (torch, imported only here) ---------------------------------------------------

def torch_layer(inputs: int, hidden: int):
    from torch import nn
    return nn.GRU(inputs, hidden, batch_first=True)


def torch_state(template, batch: int, hidden: int):
    """The zero state (batch x H), on template's device and dtype."""
    return template.new_zeros(batch, hidden)


def torch_run(layer, x, state):
    """(outputs batch x time x H, the last state) for x batch x time x inputs."""
    seq, h = layer(x, state.unsqueeze(0))
    return seq, h[0]


def _to_keras(w: np.ndarray, hidden: int) -> np.ndarray:
    """torch r | z | n blocks (along axis 0) -> the file's z | r | c."""
    r, z, n = w[:hidden], w[hidden:2 * hidden], w[2 * hidden:]
    return np.concatenate([z, r, n])


def _to_torch(w: np.ndarray, hidden: int) -> np.ndarray:
    z, r, n = w[:hidden], w[hidden:2 * hidden], w[2 * hidden:]
    return np.concatenate([r, z, n])


def from_torch(layer) -> dict[str, np.ndarray]:
    """The file's kernel, recurrent and bias arrays (float32) from an nn.GRU."""
    h = layer.hidden_size
    w_ih, w_hh, b_ih, b_hh = (p.detach().cpu().numpy() for p in (
        layer.weight_ih_l0, layer.weight_hh_l0, layer.bias_ih_l0, layer.bias_hh_l0))
    return {"kernel": _to_keras(w_ih, h).T, "recurrent": _to_keras(w_hh, h).T,
            "bias": np.stack([_to_keras(b_ih, h), _to_keras(b_hh, h)])}


def to_torch(layer, kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray) -> None:
    """Set an nn.GRU's parameters from the file's arrays (rounded to float32)."""
    import torch
    h = layer.hidden_size
    values = [_to_torch(kernel.T, h), _to_torch(recurrent.T, h), _to_torch(bias[0], h),
              _to_torch(bias[1], h)]
    with torch.no_grad():
        for parameter, value in zip((layer.weight_ih_l0, layer.weight_hh_l0, layer.bias_ih_l0,
                                     layer.bias_hh_l0), values, strict=True):
            parameter.copy_(torch.from_numpy(np.ascontiguousarray(value, np.float32)))
