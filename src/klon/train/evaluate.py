"""A model's output on clips the way training runs it: each clip from a zero state."""
import numpy as np
import torch


def predict(model, inputs):
    """The model's output for clips of volts, each run from a zero state: clips x samples (or
    one 1-D clip) of audio, or for a model with knob inputs clips x samples x inputs (or one
    samples x inputs clip): the audio, then the knobs."""
    x = np.asarray(inputs, np.float32)
    if model.inputs == 1:
        x = x[..., None]
    batch = x.reshape(-1, x.shape[-2], x.shape[-1])
    with torch.no_grad():
        y, _ = model.eval()(torch.from_numpy(np.ascontiguousarray(batch)))
    return y.numpy().reshape(x.shape[:-1])
