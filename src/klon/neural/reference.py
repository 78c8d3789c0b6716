"""The models' maths in plain numpy float64: the yardstick the compiled kernels are held to.

Written for clarity, one time step per line of maths (each architecture's reference_step),
vectorised over a batch (many clips at once) instead of over time, so scoring 400 clips costs
one pass over 22050 steps.
"""
import numpy as np

from klon.neural.architectures import architecture
from klon.neural.model_file import ModelSpec


def reference_step(spec: ModelSpec, u: np.ndarray, state: tuple[np.ndarray, ...]
                   ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """One step. u: batch x inputs, state: the architecture's state vectors, each batch x H
    (GRU: h; LSTM: h and the cell). Returns (the Dense output per batch row, the new state)."""
    state = architecture(spec.kind).reference_step(spec, u, state)
    return state[0] @ spec.dense_weights + spec.dense_bias, state


def reference_output(spec: ModelSpec, x: np.ndarray, preroll: int = 0) -> np.ndarray:
    """Run a model from rest over x: (frames,) or (batch, frames) for one input, or
    (batch, frames, inputs). `preroll` zero samples go first (not returned)."""
    x = np.asarray(x, dtype=np.float64)
    squeeze = x.ndim == 1
    if x.ndim == 1:
        x = x[None, :, None]
    elif x.ndim == 2:
        x = x[:, :, None]
    batch, frames, _ = x.shape
    state = architecture(spec.kind).reference_state(batch, spec.hidden_size)
    zeros = np.zeros((batch, spec.inputs))
    for _ in range(preroll):
        _, state = reference_step(spec, zeros, state)
    y = np.empty((batch, frames))
    for t in range(frames):
        y[:, t], state = reference_step(spec, x[:, t, :], state)
    return y[0] if squeeze else y
