"""Model files: the one reader and the one writer (docs/model-format.md is the specification).

RTNeural/Keras-style JSON, one recurrent layer (an architecture of klon.neural.architectures)
and a Dense(1) output, plus a `metadata` block that RTNeural-based hosts ignore:

    {"in_shape": [null, null, k],
     "layers": [{"type": "gru", "shape": [null, null, H], "weights": [kernel, recurrent, bias]},
                {"type": "dense", "shape": [null, null, 1], "weights": [W (H x 1), b (1)]}],
     "metadata": {"format_version": 1, "gain": 0.5, "sample_rate": 44100, ...}}

Weights are float32, each written as the shortest decimal that reads back to the same float32.
A file without a format_version (the shipped sets, the original plugin's files) is version 1;
a newer version than FORMAT_VERSION is refused. The engine, training, the C export and the
tests all read through read_model and write through write_model.
"""
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from klon.core.errors import KlonError
from klon.core.files import atomic_write
from klon.neural.architectures import architecture, kinds
from klon.neural.architectures.common import shape_text

FORMAT_VERSION = 1  # what write_model writes and the newest read_model reads
# a GRU-64 with its training history is about 1 MB; anything past this is not a model, and
# reading it whole could exhaust the memory
MAX_FILE_BYTES = 64 * 2**20
DEFAULT_SAMPLE_RATE = 44_100.0  # the rate the published models were trained at
_GAIN_IN_NAME = re.compile(r"_(\d{1,3})\.json$", re.IGNORECASE)
_LAYERS = "one {} layer followed by Dense(1)"


@dataclass(frozen=True, eq=False)
class ModelSpec:
    """A recurrent model's weights (float64, as the file's decimals read) and what the file says
    about it. kernel, recurrent and bias have the shapes of the architecture's weight_shapes."""

    kind: str  # the architecture: "gru" or "lstm"
    kernel: np.ndarray  # inputs x gates * H
    recurrent: np.ndarray  # H x gates * H
    bias: np.ndarray  # GRU: 2 x 3H (input row, recurrent row); LSTM: 4H
    dense_weights: np.ndarray  # H
    dense_bias: float
    gain: float | None = None  # the Gain setting it models, if known
    sample_rate: float = DEFAULT_SAMPLE_RATE
    metadata: dict = field(default_factory=dict)  # the file's metadata block, as read
    source: str = ""
    format_version: int = FORMAT_VERSION  # the version of the file it was read from

    @property
    def hidden_size(self) -> int:
        return self.recurrent.shape[0]

    @property
    def inputs(self) -> int:
        """Input channels: 0 the audio, then knobs (a two-input bank model gets the Gain)."""
        return self.kernel.shape[0]

    @property
    def name(self) -> str:
        return os.path.basename(self.source) or f"{self.kind}-{self.hidden_size}"


def read_model(path: str | os.PathLike) -> ModelSpec:
    """Load and check a model file -> ModelSpec, or a one-line KlonError naming the file."""
    name = os.fspath(path)
    if not os.path.exists(name):
        raise KlonError(f"cannot read model '{name}': no such file")
    if os.path.isdir(name):
        raise KlonError(f"cannot read model '{name}': it is a directory, not a model file")
    try:
        with open(name, encoding="utf-8") as f:
            # one byte more than the limit tells a file at the limit from a larger one (the
            # size on disk says nothing for a pipe or /dev/zero)
            text = f.read(MAX_FILE_BYTES + 1)
        if len(text) > MAX_FILE_BYTES:
            raise KlonError(f"cannot read model '{name}': larger than {MAX_FILE_BYTES >> 20} MB, "
                            f"not a model file")
        document = json.loads(text)
    except RecursionError:  # json's parser recurses once per level of nesting
        raise KlonError(f"cannot read model '{name}': JSON nested too deeply to be a model "
                        f"file") from None
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


def write_model(path: str | os.PathLike, spec: ModelSpec) -> Path:
    """Write a model file atomically (whole or not at all); returns the path. The document is
    checked by the reader first, so nothing is written that read_model would refuse."""
    name = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(name))
    if not os.path.isdir(folder):
        raise KlonError(f"cannot write '{name}': directory '{folder}' does not exist")
    document = model_document(spec)
    try:
        parse_model(document, name)
    except KlonError as error:
        raise KlonError(f"cannot write model '{name}': {error}") from None
    try:
        return atomic_write(name, json.dumps(document, indent=2) + "\n")
    except OSError as error:
        raise KlonError(f"cannot write model '{name}': {error.strerror or error}") from None


def model_document(spec: ModelSpec) -> dict:
    """The JSON document (a dict) of a model file, laid out as the original plugin's files are;
    the metadata block starts with the format version and carries the spec's gain and
    sample_rate."""
    metadata = {"format_version": FORMAT_VERSION}
    metadata.update((k, v) for k, v in spec.metadata.items() if k != "format_version")
    if spec.gain is not None and metadata.get("gain") != spec.gain:
        metadata["gain"] = spec.gain
    if metadata.get("sample_rate") != spec.sample_rate:
        rate = spec.sample_rate
        metadata["sample_rate"] = int(rate) if float(rate).is_integer() else float(rate)
    dense = [np.reshape(spec.dense_weights, (-1, 1)), [spec.dense_bias]]
    return {
        "in_shape": [None, None, spec.inputs],
        "layers": [
            {"type": spec.kind, "shape": [None, None, spec.hidden_size],
             "weights": [_nested(w) for w in (spec.kernel, spec.recurrent, spec.bias)]},
            {"type": "dense", "shape": [None, None, 1], "weights": [_nested(w) for w in dense]},
        ],
        "metadata": metadata,
    }


def _nested(array) -> list | float:
    """Nested lists of float32 values, each the shortest decimal that reads back to the same
    float32 (as the original plugin's files are)."""
    array = np.asarray(array, np.float32)
    if array.ndim == 0:
        return float(np.format_float_positional(array[()], unique=True, trim="-"))
    return [_nested(row) for row in array]


def parse_model(document: object, source: str = "") -> ModelSpec:
    """Check a decoded JSON document -> ModelSpec (messages without the file name)."""
    if not isinstance(document, dict):
        raise KlonError(f"expected a JSON object with 'in_shape' and 'layers', got "
                        f"{type(document).__name__}")
    metadata = document.get("metadata", {})
    if not isinstance(metadata, dict):
        raise KlonError("'metadata' must be a JSON object")
    version = _format_version(metadata)  # first: a newer file may differ in anything below
    for key in ("in_shape", "layers"):
        if key not in document:
            raise KlonError(f"missing '{key}'")
    inputs = _in_shape(document["in_shape"])
    layers = document["layers"]
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        raise KlonError("'layers' must be a list of layer objects")
    types = [str(layer.get("type")) for layer in layers]
    expected = _LAYERS.format(" or ".join(kind.upper() for kind in kinds()))
    for t in types:
        if t not in (*kinds(), "dense"):
            raise KlonError(f"unsupported layer type '{t}': klon runs {expected}")
    if len(layers) != 2 or types[0] not in kinds() or types[1] != "dense":
        raise KlonError(f"unsupported architecture ({' -> '.join(types) or 'no layers'}): klon "
                        f"runs {expected}")
    recurrent_layer, dense_layer = layers
    kind = types[0]
    hidden = _units(recurrent_layer, kind)
    _check_activations(recurrent_layer, kind)
    kernel, recurrent, bias = _weights(recurrent_layer, kind, 3)
    architecture(kind).check_weights({"kernel": kernel, "recurrent": recurrent, "bias": bias},
                                     hidden, inputs)
    outputs = _units(dense_layer, "dense")
    if outputs != 1:
        raise KlonError(f"unsupported Dense({outputs}): klon models have one output")
    activation = dense_layer.get("activation") or "linear"
    if activation != "linear":
        raise KlonError(f"unsupported Dense activation '{activation}': only linear")
    dense_w, dense_b = _weights(dense_layer, "dense", 2)
    _check_shape(dense_w, (hidden, 1), "dense weights")
    _check_shape(dense_b, (1,), "dense bias")
    if "hidden_size" in metadata and metadata["hidden_size"] != hidden:
        raise KlonError(f"metadata says hidden_size {metadata['hidden_size']!r} but the "
                        f"weights have {hidden} units")
    return ModelSpec(kind, kernel, recurrent, bias, dense_w[:, 0].copy(), float(dense_b[0]),
                     _gain(metadata, source), _sample_rate(metadata), metadata, source, version)


def _format_version(metadata: dict) -> int:
    version = metadata.get("format_version", 1)
    if not _is_count(version):
        raise KlonError(f"metadata format_version must be a whole number from 1, got "
                        f"{version!r}")
    if version > FORMAT_VERSION:
        raise KlonError(f"format_version {version} is newer than this klon reads (up to "
                        f"{FORMAT_VERSION}): update klon")
    return version


def _in_shape(value: object) -> int:
    if (not isinstance(value, list) or len(value) != 3 or value[:2] != [None, None]
            or not _is_count(value[2])):
        raise KlonError(f"'in_shape' must be [null, null, inputs], got {value!r}")
    return value[2]


def _units(layer: dict, kind: str) -> int:
    shape = layer.get("shape")
    if not isinstance(shape, list) or len(shape) != 3 or not _is_count(shape[2]):
        raise KlonError(f"{kind} layer: 'shape' must be [null, null, units], got {shape!r}")
    return shape[2]


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_activations(layer: dict, kind: str) -> None:
    activation = layer.get("activation") or "tanh"
    if activation != "tanh":
        raise KlonError(f"unsupported {kind} activation '{activation}': only tanh")
    gate = layer.get("recurrent_activation") or "sigmoid"
    if gate != "sigmoid":
        raise KlonError(f"unsupported {kind} recurrent activation '{gate}': only sigmoid")


def _weights(layer: dict, kind: str, count: int) -> list[np.ndarray]:
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


def _check_shape(array: np.ndarray, shape: tuple[int, ...], what: str) -> None:
    if array.shape != shape:
        raise KlonError(f"{what} have shape {shape_text(array.shape)}, expected "
                        f"{shape_text(shape)}")


def _gain(metadata: dict, source: str) -> float | None:
    """metadata.gain, else the Gain in the file name (centaur_25.json: 0.25), else None. A null
    gain (a model trained on audio of no known setting) counts as none given."""
    if metadata.get("gain") is not None:
        gain = metadata["gain"]
        if not isinstance(gain, (int, float)) or isinstance(gain, bool) or not 0 <= gain <= 1:
            raise KlonError(f"metadata gain must be a number in [0, 1], got {gain!r}")
        return float(gain)
    match = _GAIN_IN_NAME.search(os.path.basename(source))
    if match and int(match.group(1)) <= 100:
        return int(match.group(1)) / 100
    return None


def _sample_rate(metadata: dict) -> float:
    rate = metadata.get("sample_rate", DEFAULT_SAMPLE_RATE)
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not (
            math.isfinite(rate) and rate > 0):
        raise KlonError(f"metadata sample_rate must be a positive number, got {rate!r}")
    return float(rate)
