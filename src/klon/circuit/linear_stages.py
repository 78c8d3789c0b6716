"""The pedal's three first-order linear stages: input buffer, treble control, output stage.

Each is a transfer function from nodal analysis, discretised by the bilinear transform, with its
op-amp's output swing as a clamp. They share one kernel, which re-discretises per sample while a
knob glides, so they live together; their formulas are below, each next to its stage.
"""
import numpy as np
from numba import njit

from ..dsp.bilinear import bilinear1
from ..dsp.smoothing import smoother_next, smoother_set_target
from ..errors import KlonError
from . import components as c

INPUT_BUFFER, TONE, OUTPUT_STAGE = range(3)
SMOOTHING_SECONDS = 0.05


@njit(cache=True)
def analog_coefficients(stage, knob):
    """(b1, b0, a1, a0) of H(s) = (b1 s + b0) / (a1 s + a0) for a stage at a knob position."""
    if stage == INPUT_BUFFER:
        # U1A follower after R1 and C1, R2 biasing its + input
        return c.C1 * c.R2, 0.0, c.C1 * (c.R1 + c.R2), 1.0
    if stage == TONE:
        # U2B inverting: R22 in, R24 feedback; R21 + pot + R23 bridge in to out, the wiper
        # through C14 to the inverting input. Treble = 1 puts the wiper beside R21.
        g1 = 1.0 / c.R22
        g2 = 1.0 / (c.R21 + max(c.TREBLE_POT * (1.0 - knob), c.POT_MINIMUM))
        g3 = 1.0 / (c.R23 + max(c.TREBLE_POT * knob, c.POT_MINIMUM))
        g4 = 1.0 / c.R24
        return (-c.C14 * (g1 + g2), -g1 * (g2 + g3), c.C14 * (g3 + g4), g4 * (g2 + g3))
    # output stage: C15, R25 and the level pot's top in series, its bottom || R28 to ground
    ra = c.R25 + max(c.LEVEL_POT * (1.0 - knob), c.POT_MINIMUM)
    rb = max(c.LEVEL_POT * knob, c.POT_MINIMUM)
    zb = rb * c.R28 / (rb + c.R28)
    return c.C15 * zb, 0.0, c.C15 * (ra + zb), 1.0


@njit(cache=True)
def _discretise(stage, knob, bilinear_c, coefficients):
    b1, b0, a1, a0 = analog_coefficients(stage, knob)
    bz0, bz1, az1 = bilinear1(b1, b0, a1, a0, bilinear_c)
    coefficients[0] = bz0
    coefficients[1] = bz1
    coefficients[2] = az1


@njit(cache=True)
def _run(stage, x, y, state, smoother, coefficients, bilinear_c, low, high):
    """Transposed direct form II, one state per channel; x, y: channels x frames."""
    n_channels, n_frames = x.shape
    for t in range(n_frames):
        if smoother[3] > 0.0:
            _discretise(stage, smoother_next(smoother), bilinear_c, coefficients)
        b0 = coefficients[0]
        b1 = coefficients[1]
        a1 = coefficients[2]
        for ch in range(n_channels):
            u = x[ch, t]
            v = b0 * u + state[ch]
            state[ch] = b1 * u - a1 * v
            y[ch, t] = min(max(v, low), high)


class _LinearStage:
    stage = -1
    rails = c.U2_RAILS
    knob_name = ""

    def __init__(self, sample_rate, knob=0.5, channels=1):
        self.sample_rate = float(sample_rate)
        self._bilinear_c = 2.0 * self.sample_rate
        self._low, self._high = c.output_limits(self.rails)
        self._smoother = np.zeros(4)
        self._smoother[:2] = check_knob(self.knob_name, knob) if self.knob_name else 0.0
        self._ramp_samples = int(round(SMOOTHING_SECONDS * self.sample_rate))
        self._coefficients = np.zeros(3)
        _discretise(self.stage, self._smoother[0], self._bilinear_c, self._coefficients)
        self._state = np.zeros(channels)

    def set_knob(self, value):
        smoother_set_target(self._smoother, check_knob(self.knob_name, value), self._ramp_samples)

    def reset(self, channels=None):
        if channels is not None and channels != self._state.shape[0]:
            self._state = np.zeros(channels)
        self._state[:] = 0.0

    def process(self, x, out):
        """x, out: channels x frames (out may be x)."""
        _run(self.stage, x, out, self._state, self._smoother, self._coefficients,
             self._bilinear_c, self._low, self._high)
        return out


class InputBuffer(_LinearStage):
    """U1A: a unity follower behind R1 / C1 / R2; clamps at U1's swing (0 / +9 V supplies)."""

    stage = INPUT_BUFFER
    rails = c.U1_RAILS

    def __init__(self, sample_rate, channels=1):
        super().__init__(sample_rate, 0.0, channels)


class Tone(_LinearStage):
    """U2B's active treble shelf (treble in [0, 1]); inverts, like the circuit."""

    stage = TONE
    knob_name = "treble"


class OutputStage(_LinearStage):
    """C15, R25 and the level pot into R28 at the jack (level in [0, 1]); passive, so no clamp."""

    stage = OUTPUT_STAGE
    knob_name = "level"

    def __init__(self, sample_rate, knob=0.5, channels=1):
        super().__init__(sample_rate, knob, channels)
        self._low, self._high = -np.inf, np.inf


def check_knob(name, value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise KlonError(f"{name} must be a number between 0 and 1, got {value!r}") from None
    if not 0.0 <= value <= 1.0:
        raise KlonError(f"{name} must be between 0 and 1, got {value:g}")
    return value
