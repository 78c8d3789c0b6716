"""Linear ramps for knob values, so a moved knob glides instead of clicking.

The state is a float64 array of 4: (current, target, step, remaining samples). Values are
computed back from the target (target - remaining * step), so the ramp lands exactly on the
target, never overshoots, and does not drift however long it is.
"""
from numba import njit

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


@njit(cache=True)
def smoother_ahead(state, n_samples):
    """The value n_samples ahead, without advancing (what smoother_skip would return)."""
    if state[REMAINING] > 0.0 and n_samples > 0:
        return state[TARGET] - max(state[REMAINING] - n_samples, 0.0) * state[STEP]
    return state[CURRENT]


@njit(cache=True)
def smoother_settle(state):
    """End any glide: the value jumps to the target (what a reset does to a knob)."""
    smoother_set_target(state, state[TARGET], 0)
    return state[CURRENT]
