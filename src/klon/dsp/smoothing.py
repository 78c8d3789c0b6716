"""Linear ramps for knob values, so a moved knob glides instead of clicking.

The state is a float64 array of 4: (current, target, step, remaining samples). Values are
computed back from the target (target - remaining * step), so the ramp lands exactly on the
target, never overshoots, and does not drift however long it is.
"""
import numpy as np
from numba import njit

from klon.core.errors import KlonError

CURRENT, TARGET, STEP, REMAINING = 0, 1, 2, 3


@njit(cache=True)
def smoother_set_target(state, target, ramp_samples):
    """Start a ramp from the current value to target over ramp_samples samples (0: jump)."""
    state[TARGET] = target
    if ramp_samples <= 0 or state[CURRENT] == target:
        state[CURRENT] = target
        state[STEP] = 0.0
        state[REMAINING] = 0.0
    else:
        state[STEP] = (target - state[CURRENT]) / ramp_samples
        state[REMAINING] = float(ramp_samples)


@njit(cache=True)
def smoother_next(state):
    """Advance one sample and return the new value."""
    if state[REMAINING] > 0.0:
        state[REMAINING] -= 1.0
        state[CURRENT] = state[TARGET] - state[REMAINING] * state[STEP]
    return state[CURRENT]


@njit(cache=True)
def smoother_skip(state, n_samples):
    """Advance n_samples at once and return the value reached."""
    if state[REMAINING] > 0.0 and n_samples > 0:
        state[REMAINING] = max(state[REMAINING] - n_samples, 0.0)
        state[CURRENT] = state[TARGET] - state[REMAINING] * state[STEP]
    return state[CURRENT]


class LinearSmoother:
    """A knob value that ramps linearly to each new target over ramp_seconds."""

    def __init__(self, sample_rate, ramp_seconds=0.05, initial=0.0):
        if not sample_rate > 0:
            raise KlonError(f"sample rate must be positive, got {sample_rate}")
        if not ramp_seconds >= 0:
            raise KlonError(f"ramp time must be zero or positive, got {ramp_seconds} s")
        self.ramp_samples = int(round(ramp_seconds * sample_rate))
        self.state = np.zeros(4)
        self.reset(initial)

    @property
    def value(self):
        return self.state[CURRENT]

    @property
    def target(self):
        return self.state[TARGET]

    @property
    def is_smoothing(self):
        return self.state[REMAINING] > 0.0

    def set_target(self, value):
        smoother_set_target(self.state, float(value), self.ramp_samples)

    def reset(self, value):
        """Jump to value with no ramp."""
        self.state[:] = (value, value, 0.0, 0.0)

    def next(self):
        return smoother_next(self.state)

    def skip(self, n_samples):
        """Advance n_samples (e.g. a block the caller did not need per-sample values for)."""
        return smoother_skip(self.state, int(n_samples))
