"""Model files: RTNeural/Keras-style JSON, one GRU or LSTM layer and a Dense(1) output.

    {"in_shape": [null, null, k],
     "layers": [{"type": "gru", "shape": [null, null, H],
                 "weights": [kernel (k x 3H), recurrent (H x 3H), bias (2 x 3H)]},
                {"type": "dense", "shape": [null, null, 1], "weights": [W (H x 1), b (1)]}],
     "metadata": {"gain": 0.5, "sample_rate": 44100, "hidden_size": H, ...}}   (optional)

GRU: Keras' reset_after form, gate columns z | r | h, bias row 0 for the input side and row 1
for the recurrent side. LSTM: kernel (k x 4H), recurrent (H x 4H), bias (4H), gates i | f | c | o.
The files the ChowCentaur plugin shipped have no metadata; their Gain is in their name
(centaur_25.json: 0.25). Everything else is refused with a KlonError that names the problem.
"""
import json
import math
import os
import re
from dataclasses import dataclass, field

import numpy as np

from klon.core.errors import KlonError

KINDS = {"gru": 3, "lstm": 4}  # layer type -> weight columns per unit
DEFAULT_SAMPLE_RATE = 44_100.0  # the rate the published models were trained at
_GAIN_IN_NAME = re.compile(r"_(\d{1,3})\.json$", re.IGNORECASE)


@dataclass(frozen=True, eq=False)
class ModelSpec:
    """A recurrent model's weights (float64, as in the file) and what the file says about it."""

    kind: str  # "gru" or "lstm"
    kernel: np.ndarray  # inputs x (3 or 4) H
    recurrent: np.ndarray  # H x (3 or 4) H
    bias: np.ndarray  # GRU: 2 x 3H (input row, recurrent row); LSTM: 4H
    dense_weights: np.ndarray  # H
    dense_bias: float
    gain: float | None = None  # the Gain setting it models, if known
    sample_rate: float = DEFAULT_SAMPLE_RATE
    metadata: dict = field(default_factory=dict)
    source: str = ""

    @property
    def hidden_size(self):
        return self.recurrent.shape[0]

    @property
    def inputs(self):
        return self.kernel.shape[0]

    @property
    def name(self):
        return os.path.basename(self.source) or f"{self.kind}-{self.hidden_size}"


def read_model(path):
    """Load and check a model file -> ModelSpec."""
    name = os.fspath(path)
    if not os.path.exists(name):
        raise KlonError(f"cannot read model '{name}': no such file")
    if os.path.isdir(name):
        raise KlonError(f"cannot read model '{name}': it is a directory, not a model file")
    try:
        with open(name, encoding="utf-8") as f:
            document = json.load(f)
    except UnicodeDecodeError:
        raise KlonError(f"cannot read model '{name}': not a text (JSON) file") from None
    except json.JSONDecodeError as error:
        raise KlonError(f"cannot read model '{name}': malformed JSON ({error.msg} at line "
                        f"{error.lineno}, column {error.colno})") from None
    except OSError as error:
        raise KlonError(f"cannot read model '{name}': {error.strerror or error}") from None
    try:
        return parse_model(document, name)
    except KlonError as error:
        raise KlonError(f"model '{name}': {error}") from None


def parse_model(document, source=""):
    """Check a decoded JSON document -> ModelSpec (messages without the file name)."""
    if not isinstance(document, dict):
        raise KlonError(f"expected a JSON object with 'in_shape' and 'layers', got "
                        f"{type(document).__name__}")
    for key in ("in_shape", "layers"):
        if key not in document:
            raise KlonError(f"missing '{key}'")
    inputs = _in_shape(document["in_shape"])
    layers = document["layers"]
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        raise KlonError("'layers' must be a list of layer objects")
    types = [str(layer.get("type")) for layer in layers]
    for t in types:
        if t not in (*KINDS, "dense"):
            raise KlonError(f"unsupported layer type '{t}': klon runs one GRU or LSTM layer "
                            f"followed by Dense(1)")
    if len(layers) != 2 or types[0] not in KINDS or types[1] != "dense":
        raise KlonError(f"unsupported architecture ({' -> '.join(types) or 'no layers'}): klon "
                        f"runs one GRU or LSTM layer followed by Dense(1)")
    recurrent_layer, dense_layer = layers
    kind = types[0]
    hidden = _units(recurrent_layer, kind)
    _check_activations(recurrent_layer, kind)
    kernel, recurrent, bias = _weights(recurrent_layer, kind, 3)
    gates = KINDS[kind] * hidden
    bias_shape = (2, gates) if kind == "gru" else (gates,)
    _check_shape(kernel, (inputs, gates), f"{kind} kernel")
    _check_shape(recurrent, (hidden, gates), f"{kind} recurrent weights")
    if kind == "gru" and bias.shape == (gates,):
        raise KlonError("GRU with one bias row (Keras reset_after=False) is not supported: "
                        "klon runs the reset_after=True form (bias 2 x 3H)")
    _check_shape(bias, bias_shape, f"{kind} bias")
    outputs = _units(dense_layer, "dense")
    if outputs != 1:
        raise KlonError(f"unsupported Dense({outputs}): klon models have one output")
    activation = dense_layer.get("activation") or "linear"
    if activation != "linear":
        raise KlonError(f"unsupported Dense activation '{activation}': only linear")
    dense_w, dense_b = _weights(dense_layer, "dense", 2)
    _check_shape(dense_w, (hidden, 1), "dense weights")
    _check_shape(dense_b, (1,), "dense bias")
    metadata = document.get("metadata", {})
    if not isinstance(metadata, dict):
        raise KlonError("'metadata' must be a JSON object")
    if "hidden_size" in metadata and metadata["hidden_size"] != hidden:
        raise KlonError(f"metadata says hidden_size {metadata['hidden_size']!r} but the "
                        f"weights have {hidden} units")
    return ModelSpec(kind, kernel, recurrent, bias, dense_w[:, 0].copy(), float(dense_b[0]),
                     _gain(metadata, source), _sample_rate(metadata), metadata, source)


def _in_shape(value):
    if (not isinstance(value, list) or len(value) != 3 or value[:2] != [None, None]
            or not _is_count(value[2])):
        raise KlonError(f"'in_shape' must be [null, null, inputs], got {value!r}")
    return value[2]


def _units(layer, kind):
    shape = layer.get("shape")
    if not isinstance(shape, list) or len(shape) != 3 or not _is_count(shape[2]):
        raise KlonError(f"{kind} layer: 'shape' must be [null, null, units], got {shape!r}")
    return shape[2]


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_activations(layer, kind):
    activation = layer.get("activation") or "tanh"
    if activation != "tanh":
        raise KlonError(f"unsupported {kind} activation '{activation}': only tanh")
    gate = layer.get("recurrent_activation") or "sigmoid"
    if gate != "sigmoid":
        raise KlonError(f"unsupported {kind} recurrent activation '{gate}': only sigmoid")


def _weights(layer, kind, count):
    weights = layer.get("weights")
    if not isinstance(weights, list) or len(weights) != count:
        got = len(weights) if isinstance(weights, list) else type(weights).__name__
        raise KlonError(f"{kind} layer: 'weights' must be a list of {count} arrays, got {got}")
    arrays = []
    for i, w in enumerate(weights):
        try:
            a = np.array(w, dtype=np.float64)
        except (TypeError, ValueError):
            raise KlonError(f"{kind} layer: weights[{i}] is not a rectangular array of "
                            f"numbers") from None
        if not np.all(np.isfinite(a)):
            raise KlonError(f"{kind} layer: weights[{i}] holds NaN or Inf")
        arrays.append(a)
    return arrays


def _check_shape(array, shape, what):
    if array.shape != shape:
        raise KlonError(f"{what} have shape {_shape(array.shape)}, expected {_shape(shape)}")


def _shape(shape):
    return " x ".join(map(str, shape)) if shape else "scalar"


def _gain(metadata, source):
    if "gain" in metadata:
        gain = metadata["gain"]
        if not isinstance(gain, (int, float)) or isinstance(gain, bool) or not 0 <= gain <= 1:
            raise KlonError(f"metadata gain must be a number in [0, 1], got {gain!r}")
        return float(gain)
    match = _GAIN_IN_NAME.search(os.path.basename(source))
    if match and int(match.group(1)) <= 100:
        return int(match.group(1)) / 100
    return None


def _sample_rate(metadata):
    rate = metadata.get("sample_rate", DEFAULT_SAMPLE_RATE)
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not (
            math.isfinite(rate) and rate > 0):
        raise KlonError(f"metadata sample_rate must be a positive number, got {rate!r}")
    return float(rate)
