"""The pedal's three first-order linear stages: input buffer, treble control, output stage.

Each is a transfer function from nodal analysis, discretised by the bilinear transform, with its
op-amp's output swing as a clamp. They share one kernel, which re-discretises per sample while a
knob glides, so they live together; their formulas are below, each next to its stage.
"""
import math

import numpy as np
from numba import njit

from klon.dsp.bilinear import bilinear1
from klon.dsp.smoothing import smoother_next, smoother_set_target
from klon.core.errors import KlonError
from klon.pedal import components as c

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


# layout of a stage's parameter array
BILINEAR_C, LOW, HIGH, B0, B1, A1 = range(6)


@njit(cache=True, error_model="numpy")
def _discretise(stage, knob, params):
    """Bilinear transform pre-warped at the stage's pole, so the pole lands where the analog
    one is (unwarped, the treble shelf's 3.3 kHz pole would sit 2 % low at 44.1 kHz)."""
    b1, b0, a1, a0 = analog_coefficients(stage, knob)
    twice_rate = params[BILINEAR_C]
    pole = abs(a0 / a1)  # rad/s
    c = pole / math.tan(pole / twice_rate) if pole < 0.9 * twice_rate else twice_rate
    params[B0], params[B1], params[A1] = bilinear1(b1, b0, a1, a0, c)


@njit(cache=True, error_model="numpy")
def run_stage(stage, x, y, state, smoother, params):
    """Transposed direct form II, one state per channel; x, y: channels x frames (y may be x)."""
    n_channels, n_frames = x.shape
    low = params[LOW]
    high = params[HIGH]
    for t in range(n_frames):
        if smoother[3] > 0.0:
            _discretise(stage, smoother_next(smoother), params)
        b0 = params[B0]
        b1 = params[B1]
        a1 = params[A1]
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
        self.params = np.zeros(6)
        self.params[BILINEAR_C] = 2.0 * self.sample_rate
        self.params[LOW], self.params[HIGH] = self.limits
        self.smoother = np.zeros(4)
        self.smoother[:2] = check_knob(self.knob_name, knob) if self.knob_name else 0.0
        self._ramp_samples = int(round(SMOOTHING_SECONDS * self.sample_rate))
        _discretise(self.stage, self.smoother[0], self.params)
        self.state = np.zeros(channels)

    @property
    def limits(self):
        """The op-amp's output swing, AC volts."""
        return c.output_limits(self.rails)

    @property
    def knob(self):
        return self.smoother[1]

    @knob.setter
    def knob(self, value):
        smoother_set_target(self.smoother, check_knob(self.knob_name, value), self._ramp_samples)

    def reset(self, channels=None):
        if channels is not None and channels != self.state.shape[0]:
            self.state = np.zeros(channels)
        self.state[:] = 0.0

    def process(self, x, out):
        """x, out: channels x frames float64 (out may be x)."""
        run_stage(self.stage, x, out, self.state, self.smoother, self.params)
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

    limits = (-np.inf, np.inf)


def check_knob(name, value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise KlonError(f"{name} must be a number between 0 and 1, got {value!r}") from None
    if not 0.0 <= value <= 1.0:
        raise KlonError(f"{name} must be between 0 and 1, got {value:g}")
    return value
