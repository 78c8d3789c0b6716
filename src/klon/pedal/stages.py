"""The pedal's three first-order linear stages: input buffer, treble control, output stage.

Each is a transfer function from nodal analysis, discretised by the bilinear transform, with its
op-amp's output swing as a clamp. They share one kernel, which re-discretises per sample while a
knob glides, so they live together; their formulas are below, each next to its stage. Once per
kernel call a state below TINY becomes zero, so a decaying tail never reaches the subnormal
range (slow on x86; normal signals never get near it).
"""
import math
from typing import NamedTuple

import numpy as np
from numba import njit

from klon.core.glide import CURRENT, REMAINING, smoother_next, smoother_settle
from klon.core.processor import Knob, Processor
from klon.dsp.bilinear import bilinear1
from klon.pedal import components as c

INPUT_BUFFER, TONE, OUTPUT_STAGE = range(3)
TINY = 1e-30  # states below this become zero once per kernel call


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


# layout of a stage's memory, the one float64 array its kernel reads and writes (one array, not
# three: every array a block call passes costs its dispatch 0.05-0.1 us): the knob's smoother
# (klon.core.glide) at GLIDE, the parameters at PARAMS, the filter's memory (one per channel)
# from STATE on
GLIDE, PARAMS, STATE = 0, 4, 10


@njit(cache=True, error_model="numpy", inline="always")
def _section(u, s, b0, b1, a1):
    """One sample of the transposed direct form II section: (its output, its next memory)."""
    v = b0 * u + s
    return v, b1 * u - a1 * v


@njit(cache=True, error_model="numpy")
def run_stage(stage, x, y, memory):
    """Transposed direct form II, one state per channel; x, y: channels x frames (y may be x);
    memory: the stage's (GLIDE, PARAMS, STATE)."""
    n_channels, n_frames = x.shape
    glide, params, state = memory[GLIDE:PARAMS], memory[PARAMS:STATE], memory[STATE:]
    low = params[LOW]
    high = params[HIGH]
    if n_channels == 2 and glide[REMAINING] == 0.0:
        # stereo with the knob at rest, the commonest block: the coefficients and both
        # filters' memories held in registers
        b0, b1, a1 = params[B0], params[B1], params[A1]
        s0, s1 = state[0], state[1]
        for t in range(n_frames):
            v0, s0 = _section(x[0, t], s0, b0, b1, a1)
            v1, s1 = _section(x[1, t], s1, b0, b1, a1)
            y[0, t] = min(max(v0, low), high)
            y[1, t] = min(max(v1, low), high)
        state[0], state[1] = s0, s1
    else:
        for t in range(n_frames):
            if glide[REMAINING] > 0.0:
                _discretise(stage, smoother_next(glide), params)
            b0, b1, a1 = params[B0], params[B1], params[A1]
            for ch in range(n_channels):
                v, state[ch] = _section(x[ch, t], state[ch], b0, b1, a1)
                y[ch, t] = min(max(v, low), high)
    for ch in range(n_channels):
        if abs(state[ch]) < TINY:
            state[ch] = 0.0


class LinearStage(Processor):
    """A first-order stage at `sample_rate`: its memory (GLIDE, PARAMS, STATE) in
    `kernel_state`, its knob's glide and its parameters views of it."""

    stage = -1
    rails = c.U2_RAILS

    def __init__(self, sample_rate: float, channels: int = 1, **knob: float):
        self.sample_rate = float(sample_rate)
        self.init_knobs(**knob)
        memory = np.zeros(STATE + channels)
        # the input buffer has no knob: its (unused) glide stays at rest
        memory[GLIDE:PARAMS] = next(iter(self.glides.values())) if self.glides else 0.0
        memory[PARAMS + BILINEAR_C] = 2.0 * self.sample_rate
        memory[PARAMS + LOW], memory[PARAMS + HIGH] = self.limits
        _discretise(self.stage, memory[GLIDE + CURRENT], memory[PARAMS:STATE])
        self.channels = channels
        self._adopt(memory)

    def _adopt(self, memory: np.ndarray) -> None:
        """Make `memory` the stage's: the knob's glide and the parameters become its views."""
        self.kernel_state = memory
        self.params = memory[PARAMS:STATE]
        for name in self.glides:
            self.glides[name] = memory[GLIDE:PARAMS]

    @property
    def limits(self) -> tuple[float, float]:
        """The op-amp's output swing, AC volts."""
        return c.output_limits(self.rails)

    def reset(self, channels: int | None = None) -> None:
        """Back to rest, as if just switched on: the filter empty and the knob at its value (a
        glide in progress ends there at once); a channel count re-sizes the state."""
        if channels is not None and channels != self.channels:
            self.channels = channels
            memory = np.zeros(STATE + channels)
            memory[:STATE] = self.kernel_state[:STATE]
            self._adopt(memory)
        glide = self.kernel_state[GLIDE:PARAMS]
        if glide[REMAINING] > 0.0:
            _discretise(self.stage, smoother_settle(glide), self.params)
        self.kernel_state[STATE:] = 0.0

    def render(self, x: np.ndarray, y: np.ndarray) -> None:
        run_stage(self.stage, x, y, self.kernel_state)


class InputBuffer(LinearStage):
    """U1A: a unity follower behind R1 / C1 / R2; clamps at U1's swing (0 / +9 V supplies)."""

    stage = INPUT_BUFFER
    rails = c.U1_RAILS

    def __init__(self, sample_rate: float, channels: int = 1):
        super().__init__(sample_rate, channels)


class Tone(LinearStage):
    """U2B's active treble shelf (treble in [0, 1]); inverts, like the circuit."""

    stage = TONE
    treble = Knob("Treble, 0..1: 1 puts the pot's wiper beside R21 (brightest)")

    def __init__(self, sample_rate: float, treble: float = 0.5, channels: int = 1):
        super().__init__(sample_rate, channels, treble=treble)


class OutputStage(LinearStage):
    """C15, R25 and the level pot into R28 at the jack (level in [0, 1]); passive, so no clamp."""

    stage = OUTPUT_STAGE
    level = Knob("Level, 0..1: the output volume pot")

    limits = (-np.inf, np.inf)

    def __init__(self, sample_rate: float, level: float = 0.5, channels: int = 1):
        super().__init__(sample_rate, channels, level=level)


class SharedStages(NamedTuple):
    """The stages both engines share, as their kernels read them: each one's memory."""

    input_buffer: np.ndarray
    tone: np.ndarray
    output_stage: np.ndarray


def share_memory(input_buffer: InputBuffer, tone: Tone, output_stage: OutputStage) -> np.ndarray:
    """The three stages' memories moved into the rows of one array (INPUT_BUFFER, TONE,
    OUTPUT_STAGE), which each stage then reads and writes: a pedal's block call passes one
    array for them, not three. The stages must have one channel count."""
    stages = (input_buffer, tone, output_stage)
    rows = np.stack([stage.kernel_state for stage in stages])
    for stage, row in zip(stages, rows, strict=True):
        stage._adopt(row)
    return rows


@njit(cache=True)
def name_stages(stages):
    """SharedStages from share_memory's array, as a kernel receives it."""
    return SharedStages(stages[INPUT_BUFFER], stages[TONE], stages[OUTPUT_STAGE])
