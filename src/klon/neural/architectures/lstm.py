"""LSTM, as Keras and RTNeural write it:

    i = sigmoid(x Ki + h Ui + bi)          input gate
    f = sigmoid(x Kf + h Uf + bf)          forget gate
    c~ = tanh(x Kc + h Uc + bc)            candidate
    o = sigmoid(x Ko + h Uo + bo)          output gate
    cell' = f cell + i c~,  h' = o tanh(cell')

The file holds the gates' columns side by side, i | f | c | o, and one bias; torch has the same
gate order in rows and two biases that add up.
"""
import numpy as np

from klon.neural.architectures import c_source as cs
from klon.neural.architectures import common

KIND = "lstm"
GATES = ("i", "f", "c", "o")  # the file's column order
STATE_BLOCKS = ("HS", "CS")  # the state in the row: h, then the cell state
C_UNIT_FIELDS = ()


def weight_shapes(hidden: int, inputs: int) -> dict[str, tuple[int, ...]]:
    """The recurrent layer's three arrays in the file."""
    return {"kernel": (inputs, 4 * hidden), "recurrent": (hidden, 4 * hidden),
            "bias": (4 * hidden,)}


def check_weights(arrays: dict[str, np.ndarray], hidden: int, inputs: int) -> None:
    common.check_shapes(KIND, arrays, weight_shapes(hidden, inputs))


def layout(hidden: int, inputs: int) -> common.Layout:
    """The gates' blocks, the Dense layer, the state HS and the cell state CS."""
    return common.allocate(common.gate_blocks(GATES, hidden, inputs)
                           + common.dense_blocks(hidden) + [("CS", hidden)])


def pack(spec) -> np.ndarray:
    """The model as one float32 row, state zero: the sigmoid gates (all but c) halved."""
    H = spec.hidden_size
    row, put = common.new_row(*layout(H, spec.inputs))
    for i, g in enumerate(GATES):
        cols = slice(i * H, (i + 1) * H)
        scale = 1.0 if g == "c" else 0.5
        put(f"K{g}", scale * spec.kernel[:, cols])
        put(f"B{g}", scale * spec.bias[cols])
        put(f"U{g}", scale * spec.recurrent[:, cols])
    common.put_dense(put, spec)
    return row


def step_source(hidden: int, inputs: int) -> str:
    """Source of the numba `_step(m, r, u0, ..)`: one time step of the instance in row r of m;
    updates its state and returns the Dense output."""
    o, _ = layout(hidden, inputs)
    lines = common.step_head(o, hidden, inputs)
    lines += [f"        t{g} = fast_tanh(({common.input_sum(o, g, hidden, inputs)}) + "
              f"{common.recurrent_sum(o, g, hidden)})" for g in GATES]
    lines += [f"        cell = (HALF + HALF * tf) * m[r, {o['CS']} + j] + (HALF + HALF * ti) * tc",
              f"        m[r, {o['CS']} + j] = cell",
              f"        m[r, {o['HS']} + j] = (HALF + HALF * to) * fast_tanh(cell)",
              common.step_return(o, hidden)]
    return "\n".join(lines)


def c_step(hidden: int, inputs: int) -> str:
    """C of `klon_step`: the numba step, elementwise over the units, the activations in
    blocks."""
    H = hidden
    gates = range(len(GATES))
    lines = cs.step_head(len(GATES), H, inputs)
    lines += cs.either(
        [f"        a[{g * H} + j] = {cs.pre_activation(g, H, inputs, True)};" for g in gates],
        [f"        a[{g * H} + j] = {cs.pre_activation(g, H, inputs, False)};" for g in gates])
    lines += ["    }", f"    klon_tanh_block(a, {4 * H});",
              "    /* the new cell state; a[j] holds it for its tanh */",
              f"    for (j = 0; j < {H}; j++) {{"]
    cell = ((f"0.5f + 0.5f * a[{H} + j]", f"state[{H} + j]"),
            ("0.5f + 0.5f * a[j]", f"a[{2 * H} + j]"))
    lines += cs.either([f"        a[j] = {cs.blend(*cell, True)};"],
                       [f"        a[j] = {cs.blend(*cell, False)};"])
    lines += [f"        state[{H} + j] = a[j];", "    }", f"    klon_tanh_block(a, {H});",
              f"    for (j = 0; j < {H}; j++)",
              f"        state[j] = (0.5f + 0.5f * a[{3 * H} + j]) * a[j];"]
    return cs.join(lines + cs.step_tail(H, inputs))


# --- float64 reference maths (klon.neural.reference) ----------------------------------------

def reference_state(batch: int, hidden: int) -> tuple[np.ndarray, ...]:
    return np.zeros((batch, hidden)), np.zeros((batch, hidden))


def reference_step(spec, u: np.ndarray, state: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """One step in float64 for a batch: u batch x inputs, state (h, cell) -> (h', cell')."""
    h, c = state
    H = spec.hidden_size
    a = u @ spec.kernel + h @ spec.recurrent + spec.bias
    i, f = common.sigmoid(a[:, :H]), common.sigmoid(a[:, H:2 * H])
    g, o = np.tanh(a[:, 2 * H:3 * H]), common.sigmoid(a[:, 3 * H:])
    c = f * c + i * g
    return o * np.tanh(c), c


# --- training (torch, imported only here) ---------------------------------------------------

def torch_layer(inputs: int, hidden: int):
    from torch import nn
    return nn.LSTM(inputs, hidden, batch_first=True)


def torch_state(template, batch: int, hidden: int):
    """The zero state (h, cell), each batch x H, on template's device and dtype."""
    return template.new_zeros(batch, hidden), template.new_zeros(batch, hidden)


def torch_run(layer, x, state):
    """(outputs batch x time x H, the last state) for x batch x time x inputs."""
    seq, (h, c) = layer(x, (state[0].unsqueeze(0), state[1].unsqueeze(0)))
    return seq, (h[0], c[0])


def from_torch(layer) -> dict[str, np.ndarray]:
    """The file's kernel, recurrent and bias arrays (float32) from an nn.LSTM."""
    w_ih, w_hh, b_ih, b_hh = (p.detach().cpu().numpy() for p in (
        layer.weight_ih_l0, layer.weight_hh_l0, layer.bias_ih_l0, layer.bias_hh_l0))
    return {"kernel": w_ih.T, "recurrent": w_hh.T, "bias": b_ih + b_hh}


def to_torch(layer, kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray) -> None:
    """Set an nn.LSTM's parameters from the file's arrays (rounded to float32); the one bias
    goes to the input side."""
    import torch
    with torch.no_grad():
        for parameter, value in zip((layer.weight_ih_l0, layer.weight_hh_l0, layer.bias_ih_l0),
                                    (kernel.T, recurrent.T, bias), strict=True):
            parameter.copy_(torch.from_numpy(np.ascontiguousarray(value, np.float32)))
        layer.bias_hh_l0.zero_()
