"""Model files: RTNeural/Keras-style JSON, laid out exactly like the original plugin's
(../shared/data/chowcentaur-models), plus a `metadata` block that RTNeural-based hosts ignore.

torch keeps GRU gates as r | z | n in rows (weight_ih: 3H x I); Keras/RTNeural as z | r | h in
columns (kernel: I x 3H) with the input and recurrent biases as two rows. LSTM gates (i | f | c |
o) have the same order in both; Keras has a single bias, torch's two add up.
"""
import datetime
import json
import os
import secrets

import numpy as np
import torch

from klon.core.errors import KlonError
from klon.train.nets import GainStageNet


def _gru_to_keras(w, hidden):
    """torch r | z | n blocks (along axis 0) -> Keras z | r | h."""
    r, z, n = w[:hidden], w[hidden:2 * hidden], w[2 * hidden:]
    return np.concatenate([z, r, n])


def _gru_to_torch(w, hidden):
    z, r, n = w[:hidden], w[hidden:2 * hidden], w[2 * hidden:]
    return np.concatenate([r, z, n])


def _nested(array):
    """Nested lists of float32 values, each written as the shortest decimal that reads back to
    the same float32 (as the original plugin's files are)."""
    array = np.asarray(array, np.float32)
    if array.ndim == 0:
        return float(np.format_float_positional(array[()], unique=True, trim="-"))
    return [_nested(row) for row in array]


def to_keras(model, metadata=None):
    """The JSON document (a dict) for a GainStageNet."""
    h = model.hidden
    rnn = model.rnn
    w_ih = rnn.weight_ih_l0.detach().cpu().numpy()
    w_hh = rnn.weight_hh_l0.detach().cpu().numpy()
    b_ih = rnn.bias_ih_l0.detach().cpu().numpy()
    b_hh = rnn.bias_hh_l0.detach().cpu().numpy()
    if model.cell == "gru":
        weights = [_gru_to_keras(w_ih, h).T, _gru_to_keras(w_hh, h).T,
                   np.stack([_gru_to_keras(b_ih, h), _gru_to_keras(b_hh, h)])]
    else:
        weights = [w_ih.T, w_hh.T, b_ih + b_hh]
    dense = [model.dense.weight.detach().cpu().numpy().T, model.dense.bias.detach().cpu().numpy()]
    document = {
        "in_shape": [None, None, model.inputs],
        "layers": [
            {"type": model.cell, "shape": [None, None, h], "weights": [_nested(w) for w in weights]},
            {"type": "dense", "shape": [None, None, 1], "weights": [_nested(w) for w in dense]},
        ],
    }
    if metadata is not None:
        document["metadata"] = {"created": datetime.date.today().isoformat(), "cell": model.cell,
                                "hidden_size": h, **metadata}
    return document


def from_keras(document):
    """A GainStageNet holding the weights of a JSON document (ours or RTNeural's GRU/LSTM +
    Dense(1) files)."""
    try:
        layers = document["layers"]
        inputs = int(document["in_shape"][-1])
        rnn, dense = layers
        cell = rnn["type"]
        hidden = int(rnn["shape"][-1])
        kernel, recurrent, bias = (np.asarray(w, np.float32) for w in rnn["weights"])
        d_w, d_b = (np.asarray(w, np.float32) for w in dense["weights"])
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise KlonError(f"not a GRU/LSTM + Dense model file ({type(error).__name__}: {error}); "
                        f"expected RTNeural/Keras JSON with two layers") from None
    if cell not in ("gru", "lstm") or dense.get("type") != "dense" or d_w.shape != (hidden, 1):
        raise KlonError(f"unsupported layers {cell!r} + {dense.get('type')!r} with output "
                        f"{d_w.shape}: klon trains one GRU or LSTM layer and a Dense(1)")
    gates = 3 if cell == "gru" else 4
    expected = [(inputs, gates * hidden), (hidden, gates * hidden),
                (2, gates * hidden) if cell == "gru" else (gates * hidden,)]
    for name, array, shape in zip(("kernel", "recurrent", "bias"), (kernel, recurrent, bias),
                                  expected):
        if array.shape != tuple(shape):
            raise KlonError(f"{cell} {name} weights have shape {array.shape}, expected {shape}")
    model = GainStageNet(hidden, cell, inputs)
    with torch.no_grad():
        r = model.rnn
        if cell == "gru":
            r.weight_ih_l0.copy_(torch.from_numpy(_gru_to_torch(kernel.T, hidden)))
            r.weight_hh_l0.copy_(torch.from_numpy(_gru_to_torch(recurrent.T, hidden)))
            r.bias_ih_l0.copy_(torch.from_numpy(_gru_to_torch(bias[0], hidden)))
            r.bias_hh_l0.copy_(torch.from_numpy(_gru_to_torch(bias[1], hidden)))
        else:
            r.weight_ih_l0.copy_(torch.from_numpy(kernel.T.copy()))
            r.weight_hh_l0.copy_(torch.from_numpy(recurrent.T.copy()))
            r.bias_ih_l0.copy_(torch.from_numpy(bias))
            r.bias_hh_l0.zero_()
        model.dense.weight.copy_(torch.from_numpy(d_w.T.copy()))
        model.dense.bias.copy_(torch.from_numpy(d_b))
    return model


def write_json(path, document):
    """Write atomically: the file appears whole or not at all."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise KlonError(f"cannot write '{path}': directory '{directory}' does not exist")
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "w") as f:
            json.dump(document, f, indent=2)
            f.write("\n")
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def save(path, model, metadata):
    write_json(path, to_keras(model, metadata))


def load(path):
    """(GainStageNet, metadata dict) from a JSON model file."""
    try:
        with open(path) as f:
            document = json.load(f)
    except FileNotFoundError:
        raise KlonError(f"cannot read model '{path}': no such file") from None
    except (OSError, ValueError) as error:
        raise KlonError(f"cannot read model '{path}': {error}") from None
    if not isinstance(document, dict):
        raise KlonError(f"cannot read model '{path}': not a JSON object")
    return from_keras(document), document.get("metadata", {})
