"""A trained net to a model file and back, through klon.neural.model_file (the one reader and
writer; docs/model-format.md). The architecture converts between torch's parameters and the
file's arrays (torch keeps GRU gates as r | z | n in rows, the file as z | r | c in columns).
"""
import datetime
import os

import numpy as np

from klon.neural.architectures import architecture
from klon.neural.model_file import DEFAULT_SAMPLE_RATE, ModelSpec, read_model, write_model
from klon.train.nets import GainStageNet


def to_spec(model: GainStageNet, metadata: dict | None = None) -> ModelSpec:
    """The ModelSpec of a net's float32 weights. With training metadata (the trainer's), the
    file also records its date, cell and hidden size."""
    arrays = architecture(model.cell).from_torch(model.rnn)
    dense_weights = model.dense.weight.detach().cpu().numpy()[0]
    dense_bias = model.dense.bias.detach().cpu().numpy()[0]
    if metadata is not None:
        metadata = {"created": datetime.date.today().isoformat(), "cell": model.cell,
                    "hidden_size": model.hidden, **metadata}
    metadata = metadata or {}
    gain = metadata.get("gain")
    return ModelSpec(model.cell, *(arrays[k].astype(np.float64) for k in
                                   ("kernel", "recurrent", "bias")),
                     dense_weights.astype(np.float64), float(dense_bias),
                     None if gain is None else float(gain),
                     float(metadata.get("sample_rate", DEFAULT_SAMPLE_RATE)), metadata)


def from_spec(spec: ModelSpec) -> GainStageNet:
    """A GainStageNet holding a model's weights (rounded to float32)."""
    import torch
    model = GainStageNet(spec.hidden_size, spec.kind, spec.inputs)
    architecture(spec.kind).to_torch(model.rnn, spec.kernel, spec.recurrent, spec.bias)
    with torch.no_grad():
        model.dense.weight.copy_(torch.from_numpy(spec.dense_weights[None, :].astype(np.float32)))
        model.dense.bias.copy_(torch.tensor([spec.dense_bias], dtype=torch.float32))
    return model


def save(path: str | os.PathLike, model: GainStageNet, metadata: dict | None) -> None:
    """Write a trained net (and its training metadata) as a model file, atomically."""
    write_model(path, to_spec(model, metadata))


def load(path: str | os.PathLike) -> tuple[GainStageNet, dict]:
    """(GainStageNet, the file's metadata block) from a model file (ours or an RTNeural/Keras
    GRU/LSTM + Dense(1) file)."""
    spec = read_model(path)
    return from_spec(spec), spec.metadata
