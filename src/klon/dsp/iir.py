"""First-order sections and biquads in transposed direct form II, one state per channel."""
import numpy as np
from numba import njit

from klon.core.errors import KlonError

# States below this are flushed to zero: a decaying feedback state would otherwise sink into
# subnormal floats, which are very slow on x86, during long silences.
_TINY = 1e-30


@njit(cache=True)
def first_order_block(x, y, coefficients, state):
    """Run (b0, b1, a1) over x into y (channels x frames; y may be x); state: (channels, 1)."""
    b0 = coefficients[0]
    b1 = coefficients[1]
    a1 = coefficients[2]
    for ch in range(x.shape[0]):
        s = state[ch, 0]
        for t in range(x.shape[1]):
            u = x[ch, t]
            v = b0 * u + s
            s = b1 * u - a1 * v
            y[ch, t] = v
        state[ch, 0] = s if abs(s) > _TINY else 0.0


@njit(cache=True)
def biquad_block(x, y, coefficients, state):
    """Run (b0, b1, b2, a1, a2) over x into y (channels x frames; y may be x);
    state: (channels, 2)."""
    b0 = coefficients[0]
    b1 = coefficients[1]
    b2 = coefficients[2]
    a1 = coefficients[3]
    a2 = coefficients[4]
    for ch in range(x.shape[0]):
        s1 = state[ch, 0]
        s2 = state[ch, 1]
        for t in range(x.shape[1]):
            u = x[ch, t]
            v = b0 * u + s1
            s1 = b1 * u - a1 * v + s2
            s2 = b2 * u - a2 * v
            y[ch, t] = v
        state[ch, 0] = s1 if abs(s1) > _TINY else 0.0
        state[ch, 1] = s2 if abs(s2) > _TINY else 0.0


def _normalised(bz, az, order, name):
    bz = np.asarray(bz, dtype=np.float64).ravel()
    az = np.asarray(az, dtype=np.float64).ravel()
    if bz.size != order + 1 or az.size != order + 1:
        raise KlonError(f"{name} needs {order + 1} numerator and {order + 1} denominator "
                        f"coefficients, got {bz.size} and {az.size}")
    if az[0] == 0.0:
        raise KlonError(f"{name}: az[0] must be non-zero")
    if not (np.all(np.isfinite(bz)) and np.all(np.isfinite(az))):
        raise KlonError(f"{name}: coefficients must be finite")
    return bz / az[0], az / az[0]


def _as_block(x, out):
    """Views of x and out as channels x frames; out is allocated only when not given."""
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    if x.ndim not in (1, 2):
        raise KlonError(f"expected a 1-D or channels x frames block, got {x.ndim} dimensions")
    if out is None:
        out = np.empty_like(x)
    elif out.shape != x.shape:
        raise KlonError(f"output block has shape {out.shape}, input has {x.shape}")
    if x.ndim == 1:
        return x.reshape(1, -1), out.reshape(1, -1), out
    return x, out, out


class _Section:
    order = 0
    name = ""

    def __init__(self, bz, az, channels=1):
        self.coefficients = np.zeros(2 * self.order + 1)
        self.set_coefficients(bz, az)
        self.state = np.zeros((channels, self.order))

    @property
    def channels(self):
        return self.state.shape[0]

    def reset(self):
        self.state[:] = 0.0

    def process(self, x, out=None):
        """Filter a block (1-D mono or channels x frames, float32/float64); out may be x.
        A new channel count starts from fresh state."""
        x2, y2, out = _as_block(x, out)
        if x2.shape[0] != self.channels:
            self.state = np.zeros((x2.shape[0], self.order))
        self._kernel(x2, y2)
        return out


class FirstOrderFilter(_Section):
    """H(z) = (b0 + b1 z^-1) / (1 + a1 z^-1), streamed block by block."""
    order = 1
    name = "FirstOrderFilter"

    def set_coefficients(self, bz, az):
        """bz = (b0, b1), az = (a0, a1); normalised so a0 = 1. The state is kept."""
        bz, az = _normalised(bz, az, 1, self.name)
        self.coefficients[:] = (bz[0], bz[1], az[1])

    def _kernel(self, x, y):
        first_order_block(x, y, self.coefficients, self.state)


class Biquad(_Section):
    """H(z) = (b0 + b1 z^-1 + b2 z^-2) / (1 + a1 z^-1 + a2 z^-2), streamed block by block."""
    order = 2
    name = "Biquad"

    def set_coefficients(self, bz, az):
        """bz = (b0, b1, b2), az = (a0, a1, a2); normalised so a0 = 1. The state is kept."""
        bz, az = _normalised(bz, az, 2, self.name)
        self.coefficients[:] = (bz[0], bz[1], bz[2], az[1], az[2])

    def _kernel(self, x, y):
        biquad_block(x, y, self.coefficients, self.state)
