"""Scoring a model on clips the way training scores it: from rest, over the scored part."""
import numpy as np
import torch

from klon.core.metrics import clip_esr


def predict(model, inputs):
    """The model's output for clips of volts (clips x samples, or one 1-D clip), each run from
    a zero state."""
    x = np.asarray(inputs, np.float32)
    batch = x.reshape(-1, x.shape[-1])
    with torch.no_grad():
        y, _ = model.eval()(torch.from_numpy(np.ascontiguousarray(batch))[:, :, None])
    return y.numpy().reshape(x.shape)


def score(model, data, names=None):
    """(per-clip ESR, pooled ESR) on the scored part of `data`'s clips (all, or those named)."""
    index = np.arange(len(data)) if names is None else \
        np.array([data.names.index(n) for n in names])
    s = data.score_start
    return clip_esr(predict(model, data.inputs[index])[:, s:], data.targets[index, s:])
