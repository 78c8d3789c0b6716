"""The models' maths in plain numpy float64: the yardstick the compiled kernels are held to.

Written for clarity, one time step per line of maths, vectorised over a batch (many clips at
once) instead of over time, so scoring 400 clips costs one pass over 22050 steps.
"""
import numpy as np


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def reference_step(spec, u, h, c=None):
    """One step. u: batch x inputs, h (and c, LSTM's cell): batch x H. Returns (y, h, c)."""
    H = spec.hidden_size
    if spec.kind == "gru":
        a = u @ spec.kernel + spec.bias[0]
        g = h @ spec.recurrent + spec.bias[1]
        z = _sigmoid(a[:, :H] + g[:, :H])
        r = _sigmoid(a[:, H:2 * H] + g[:, H:2 * H])
        candidate = np.tanh(a[:, 2 * H:] + r * g[:, 2 * H:])
        h = z * h + (1.0 - z) * candidate
    else:
        a = u @ spec.kernel + h @ spec.recurrent + spec.bias
        i, f = _sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H])
        g, o = np.tanh(a[:, 2 * H:3 * H]), _sigmoid(a[:, 3 * H:])
        c = f * c + i * g
        h = o * np.tanh(c)
    return h @ spec.dense_weights + spec.dense_bias, h, c


def reference_output(spec, x, preroll=0):
    """Run a model from rest over x: (frames,) or (batch, frames) for one input, or
    (batch, frames, inputs). `preroll` zero samples go first (not returned)."""
    x = np.asarray(x, dtype=np.float64)
    squeeze = x.ndim == 1
    if x.ndim == 1:
        x = x[None, :, None]
    elif x.ndim == 2:
        x = x[:, :, None]
    batch, frames, _ = x.shape
    h = np.zeros((batch, spec.hidden_size))
    c = np.zeros_like(h) if spec.kind == "lstm" else None
    zeros = np.zeros((batch, spec.inputs))
    for _ in range(preroll):
        _, h, c = reference_step(spec, zeros, h, c)
    y = np.empty((batch, frames))
    for t in range(frames):
        y[:, t], h, c = reference_step(spec, x[:, t, :], h, c)
    return y[0] if squeeze else y
