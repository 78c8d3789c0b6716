"""The gain stage: pre-amp + FF1, amp stage, clipper + FF2, summing amp (U1B and U2A).

With U2A ideal its inverting input is a virtual ground, so the stage splits, exactly, into parts
that run one after the other each sample (all AC volts around the 4.5 V bias):

1. pre-amp + FF1 (linear WDF, driven by the buffer output vi): gives U1B's + input (at the op-amp
   pin, not at the C3/R6/R7 junction) and the FF1 current through R19 into the summing node. Its
   root, vi, is an ideal source, so its map is folded into one product per sample
   (klon.wdf.tree.fold_source_root).
2. amp stage (U1B, non-inverting, feedback R12 || C8, ground leg gang A bottom + R10 + R11 || C7):
   nodal analysis with trapezoidal capacitors. Its output is clamped at U1B's swing; while clamped
   the feedback network is driven by the clamped output, so C7 and C8 hold what the real circuit
   holds and recovery is right.
3. clipper + FF2 (one WDF, rooted at the D2/D3 pair): the amp output through C9 + R13, C10, R16,
   the C11 + R15 branch into the gang B / R17 / C12 + R18 / R5 || C4 / R8 / C6 + R9 network, driven
   by both U1B's output and vi. One tree, so R16 and the R17, C12 + R18 currents are all seen;
   only their sum enters the summing node, so its map has one row for it
   (klon.wdf.tree.sum_outputs).
4. summing amp (U2A): the three branch currents plus FF1's through R20 || C13, clamped at U2A's
   swing. (When U2A clamps, its summing node would leave virtual ground; only signals far above
   guitar level get there, and the clamp keeps them bounded.)

The top end: C13 sits far above its corner (495 Hz) over the top octaves, so the stage's output
follows its impedance there, and the trapezoidal rule's gain error at the oversampled rate
(-1.0 dB at 16 kHz at 88.2 kHz) would reach the output whole, making the top end depend on the
host rate. So C13 takes the wide-band multistep rule of klon.dsp.integration (within 0.09 dB of
exact to 16 kHz at every rate); every other capacitor keeps the trapezoidal rule. C8 (U1B's
feedback, 967 Hz) would need it too at high Gain, but while U1B clamps its network turns stiff
(C8 through R12 || R10 + gang A: under a microsecond), where the wide-band rule is unstable, and
switching rules at each clamp corrupts the rule's memory of past currents (docs/aliasing.md,
"The top end at every rate").

Anti-aliasing: the stage's two memoryless nonlinearities, U1B's clamp and the D2/D3 pair, run
with first-order antiderivative anti-aliasing (ADAA) kept in step with the sample: each output
is the nonlinearity's mean over the segment from the previous sample's input to this one (the
difference of its antiderivative over the inputs') plus half the plain nonlinearity's change.
What is linear passes exactly (the small-signal response is unchanged); only segments across a
bend differ from the plain nonlinearity, and they carry the aliases (docs/aliasing.md). See
klon.wdf.tree.antialiased_diode_pair for the pair, antialiased_clamp here for the clamp. The
pair's antiderivative depends on the tree's port resistance, so when the Gain pots move the
kernel recomputes the remembered one for the new pots (at the same wave) before the next
sample. `GainStage(..., antialiasing=False)` runs the plain nonlinearities, for comparison.

Everything runs at the oversampled rate in one compiled kernel. A moving Gain knob glides over
50 ms in steps of RAMP_STEP samples, counted from the sample where the glide began (not from a
block's start, so the pots move at the same samples however a stream is cut into blocks); at
each step the pots move and the WDF maps are derived anew (their capacitor states carry over
untouched, so nothing jumps).

Numerical edges: the stage alone clamps its input to U1's output swing, the most the stage can
see behind the input buffer (so absurd inputs, 1e19 V and up, cannot overflow the diode solver);
once per kernel call states below TINY become zero (a decaying tail never reaches the subnormal
range, slow on x86) and a channel whose state is not finite restarts from rest.

In the pedal, `run_pedal` is the circuit engine's chain: input buffer, up-sampler, this stage,
treble control, down-sampler and output stage in one compiled call per piece of a block.
"""
from typing import NamedTuple

import numpy as np
from numba import njit

from klon import wdf
from klon.core.errors import KlonError
from klon.core.glide import CURRENT, REMAINING, smoother_ahead, smoother_settle, smoother_skip
from klon.core.kernel_state import plain
from klon.core.processor import Knob, Processor
from klon.dsp.integration import (
    WIDEBAND_HISTORY,
    WIDEBAND_WEIGHTS,
    companion_history,
    remember_current,
)
from klon.dsp.oversampling import Oversampler, downsample, upsample
from klon.pedal import components as c
from klon.pedal.stages import (
    INPUT_BUFFER,
    OUTPUT_STAGE,
    TONE,
    name_stages,
    run_stage,
)
from klon.wdf.elements import ROOT_DIODE_PAIR
from klon.wdf.tree import (
    ADAA_MEMORY,
    MEMORY_WAVE,
    antialiased_diode_pair,
    complete_down,
    fold_source_root,
    folded_source_step,
    project_up,
    set_antialiasing_memory,
    solve_root,
    sum_outputs,
)

RAMP_STEP = 16  # base-rate samples per Gain step while the knob glides (0.36 ms at 44.1 kHz)
INPUT_LIMITS = c.output_limits(c.U1_RAILS)  # the gain stage's input is U1A's output
TINY = 1e-30  # states below this become zero once per kernel call (normal signals never get there)

# layout of the coefficient array the kernel reads (G* a capacitor's companion conductance, Y*
# with the resistor beside it); ANTIALIASING is 1.0 or 0.0, ADAA_PORT the port resistance the
# stored antiderivatives were computed at (0.0: not yet, or stale)
(RS, Y7, G7, Y8, G8, Y20, G13, AMP_LOW, AMP_HIGH, SUM_LOW, SUM_HIGH, CLIP_PORT, ANTIALIASING,
 ADAA_PORT) = range(14)
# layout of a channel's op-amp state: C7's and C8's trapezoidal histories, C13's voltage and its
# past currents, newest first (the wide-band rule's memory)
H7, H8, V13, I13 = 0, 1, 2, 3
OPAMP_STATES = I13 + WIDEBAND_HISTORY
# layout of a channel's anti-aliasing memory: klon.wdf.tree.antialiased_diode_pair's (from
# MEMORY_WAVE, the previous wave up to the diode pair), then U1B's previous unclamped output
AMP = ADAA_MEMORY
# the trees' stored waves: constants, so that the kernel's products compile unrolled
PRE_STATES = 3  # C3, C16, C5
CLIP_STATES = 7
PRE_ROWS = PRE_STATES + 2  # the pre-amp's folded map: its states, U1B's + input, FF1's current
CLIP_ROWS = CLIP_STATES + 2  # the clipper's map: the wave up, its states, the summed currents
CLIP_COLUMNS = CLIP_STATES + 2  # its states and its two inputs (U1B's output, vi)
PAIR_WAVE = CLIP_ROWS - 1  # clip_result's last column: the wave up to the pair, then down
# The kernel's state is two arrays (each array a call passes costs its dispatch about 0.08 us):
# `params`, the stage's, which its channels share, and `memory`, a row per channel. Their parts,
# as GainStageState names them, lie at these offsets:
COEF_SIZE = ADAA_PORT + 1
PRE_MAP_AT = COEF_SIZE
CLIP_MAP_AT = PRE_MAP_AT + PRE_ROWS * (PRE_STATES + 1)
CLIP_ROOT_AT = CLIP_MAP_AT + CLIP_ROWS * (CLIP_COLUMNS + 1)
PARAMS_SIZE = CLIP_ROOT_AT + 2  # the diode pair's saturation current and n Vt
PRE_Z_AT = 0
CLIP_Z_AT = PRE_Z_AT + PRE_STATES + 1
PRE_RESULT_AT = CLIP_Z_AT + CLIP_COLUMNS + 1
CLIP_RESULT_AT = PRE_RESULT_AT + PRE_ROWS
OPAMP_AT = CLIP_RESULT_AT + CLIP_ROWS
ADAA_AT = OPAMP_AT + OPAMP_STATES
MEMORY_SIZE = ADAA_AT + AMP + 1


def default_oversampling(sample_rate):
    """Run the nonlinear part at 88.2 kHz or more."""
    return 4 if sample_rate < 44_100 else 2


def build_preamp_tree(sample_rate):
    """Pre-amp + FF1 from vi: C3, then R7 into C16 || R19 beside R6 || C5 into gang A's top."""
    r19, gang_a_top = wdf.Resistor(c.R19), wdf.Resistor(c.GAIN_POT / 2)
    top = wdf.Series(
        wdf.Capacitor(c.C3),
        wdf.Parallel(
            wdf.Series(wdf.Resistor(c.R7), wdf.Parallel(wdf.Capacitor(c.C16), r19)),
            wdf.Series(wdf.Parallel(wdf.Resistor(c.R6), wdf.Capacitor(c.C5)), gang_a_top),
        ),
    )
    outputs = [(gang_a_top, "voltage"), (r19, "current")]  # U1B + input, FF1 current
    return wdf.WDF(wdf.IdealVoltageSourceRoot("vi"), top, sample_rate, outputs), gang_a_top


def build_clipper_tree(sample_rate, diode):
    """Clipper + FF2, rooted at the D2/D3 pair; sources: U1B's output ("amp") and vi."""
    gang_b_top, gang_b_bottom = wdf.Resistor(c.GAIN_POT / 2), wdf.Resistor(c.GAIN_POT / 2)
    r16, r17, r18 = wdf.Resistor(c.R16), wdf.Resistor(c.R17), wdf.Resistor(c.R18)
    node_n2 = wdf.Parallel(
        wdf.Resistor(c.R8),
        wdf.Series(wdf.Capacitor(c.C6), wdf.Resistor(c.R9)),
        wdf.Series(wdf.Parallel(wdf.Resistor(c.R5), wdf.Capacitor(c.C4)), wdf.VoltageSource("vi")),
    )
    node_wb = wdf.Parallel(gang_b_bottom, r17, wdf.Series(wdf.Capacitor(c.C12), r18),
                           wdf.Series(gang_b_top, node_n2))
    node_n13 = wdf.Parallel(r16, wdf.Series(wdf.Capacitor(c.C11), wdf.Resistor(c.R15), node_wb))
    from_amp = wdf.Series(wdf.Resistor(c.R13), wdf.Capacitor(c.C9), wdf.VoltageSource("amp"))
    network = wdf.Series(wdf.Resistor(diode.series_resistance),
                         wdf.Parallel(from_amp, wdf.Series(wdf.Capacitor(c.C10), node_n13)))
    # the pair's junction capacitance (both diodes at zero bias) sits across the junctions
    top = wdf.Parallel(wdf.Capacitor(2.0 * diode.junction_capacitance), network)
    root = wdf.DiodePairRoot(diode.saturation_current, diode.ideality, c.THERMAL_VOLTAGE)
    outputs = [(r16, "current"), (r17, "current"), (r18, "current")]  # into the summing node
    tree = wdf.WDF(root, top, sample_rate, outputs)
    assert tree.source_names == ["amp", "vi"]
    return tree, gang_b_top, gang_b_bottom


class GainStageState(NamedTuple):
    """The parts of the kernel's two arrays (views of them: see gain_stage_state). Every
    per-channel part has a row per channel (separate rows let the CPU overlap the channels'
    dependency chains)."""

    coef: np.ndarray  # RS .. ADAA_PORT
    pre_map: np.ndarray  # the pre-amp + FF1 tree's step, its root folded in (fold_source_root)
    clip_map: np.ndarray  # the clipper + FF2 tree's, its three currents in one row (sum_outputs)
    clip_root: np.ndarray  # the diode pair's parameters
    pre_z: np.ndarray  # channels x the pre-amp tree's working vector
    clip_z: np.ndarray
    pre_result: np.ndarray
    clip_result: np.ndarray  # channels x (the clipper map's rows less the first, PAIR_WAVE)
    opamp_state: np.ndarray  # channels x OPAMP_STATES (H7 .. I13)
    adaa: np.ndarray  # channels x (the diode pair's ADAA_MEMORY, AMP)


def gain_stage_state(params: np.ndarray, memory: np.ndarray) -> GainStageState:
    """The named parts of `params` (PARAMS_SIZE) and `memory` (channels x MEMORY_SIZE), as
    views: what Python reads and writes there, the kernel sees."""
    return GainStageState(
        params[:COEF_SIZE], params[PRE_MAP_AT:CLIP_MAP_AT].reshape(PRE_ROWS, PRE_STATES + 1),
        params[CLIP_MAP_AT:CLIP_ROOT_AT].reshape(CLIP_ROWS, CLIP_COLUMNS + 1),
        params[CLIP_ROOT_AT:], memory[:, PRE_Z_AT:CLIP_Z_AT], memory[:, CLIP_Z_AT:PRE_RESULT_AT],
        memory[:, PRE_RESULT_AT:CLIP_RESULT_AT], memory[:, CLIP_RESULT_AT:OPAMP_AT],
        memory[:, OPAMP_AT:ADAA_AT], memory[:, ADAA_AT:])


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def run_gain_stage(x, y, s):
    """x, y: channels x frames at the oversampled rate; s: (params, memory), the stage's two
    arrays (their parts are read here as gain_stage_state names them)."""
    params, memory = s
    coef = params[:COEF_SIZE]
    pre_map = params[PRE_MAP_AT:CLIP_MAP_AT].reshape((PRE_ROWS, PRE_STATES + 1))
    clip_map = params[CLIP_MAP_AT:CLIP_ROOT_AT].reshape((CLIP_ROWS, CLIP_COLUMNS + 1))
    clip_root = params[CLIP_ROOT_AT:PARAMS_SIZE]
    rs, y7, g7, y8, g8 = coef[RS], coef[Y7], coef[G7], coef[Y8], coef[G8]
    y20, g13 = coef[Y20], coef[G13]
    amp_low, amp_high = coef[AMP_LOW], coef[AMP_HIGH]
    sum_low, sum_high = coef[SUM_LOW], coef[SUM_HIGH]
    leg = 1.0 / (1.0 + y7 * rs)
    k = y7 * leg
    inv_y8 = 1.0 / y8
    inv_y20 = 1.0 / y20
    inv_divider = 1.0 / (y8 + k)
    n_channels, n_frames = x.shape
    antialiasing = coef[ANTIALIASING] != 0.0
    port = coef[CLIP_PORT]
    if antialiasing and coef[ADAA_PORT] != port:
        # the pots moved (or the stage was reset): the stored antiderivatives for the new ones
        for ch in range(n_channels):
            adaa = memory[ch, ADAA_AT:MEMORY_SIZE]
            set_antialiasing_memory(adaa, adaa[MEMORY_WAVE], clip_root, port)
        coef[ADAA_PORT] = port
    for t in range(n_frames):
        # in three passes over the channels: their dependency chains are independent, and side
        # by side in the instruction stream the CPU overlaps them
        for ch in range(n_channels):
            vi = x[ch, t]
            row = memory[ch]
            # 1. pre-amp + FF1: U1B's + input and the current through R19
            pz = row[PRE_Z_AT:CLIP_Z_AT]
            pr = row[PRE_RESULT_AT:CLIP_RESULT_AT]
            pz[PRE_STATES] = vi
            folded_source_step(pre_map, pz, PRE_ROWS, PRE_STATES, pr)
            # 2. amp stage: i_leg = current down the ground leg, h7/h8 the capacitors' histories
            op = row[OPAMP_AT:ADAA_AT]
            h7 = op[H7]
            h8 = op[H8]
            m = h7 * leg
            v_plus = pr[PRE_STATES]
            # in the linear range v- = v+; past the swing the clamped output drives the divider
            # and v- follows. The divider formula gives v- = v+ for an unclamped output, so one
            # path serves both.
            u = v_plus + (k * v_plus - m + h8) * inv_y8  # the output were there no swing limit
            if antialiasing:
                v_amp = antialiased_clamp(row[ADAA_AT + AMP], u, amp_low, amp_high)
                row[ADAA_AT + AMP] = u
            else:
                v_amp = min(max(u, amp_low), amp_high)
            v_minus = (y8 * v_amp - h8 + m) * inv_divider
            i_leg = k * v_minus - m
            op[H7] = 2.0 * g7 * (v_minus - rs * i_leg) - h7
            op[H8] = 2.0 * g8 * (v_amp - v_minus) - h8
            # 3. clipper + FF2, driven by U1B's output and vi: the wave up to the diode pair
            cz = row[CLIP_Z_AT:PRE_RESULT_AT]
            cz[CLIP_STATES] = v_amp
            cz[CLIP_STATES + 1] = vi
            cr = row[CLIP_RESULT_AT:OPAMP_AT]
            cr[PAIR_WAVE] = project_up(clip_map, cz, CLIP_ROWS, CLIP_COLUMNS, cr)
        for ch in range(n_channels):  # the pair's wave down
            row = memory[ch]
            up = row[CLIP_RESULT_AT + PAIR_WAVE]
            if antialiasing:
                down = antialiased_diode_pair(up, row[ADAA_AT:MEMORY_SIZE], clip_root, port)
            else:
                down = solve_root(ROOT_DIODE_PAIR, -1, clip_root, up, port,
                                  row[CLIP_Z_AT + CLIP_STATES:CLIP_Z_AT + CLIP_COLUMNS])
            row[CLIP_RESULT_AT + PAIR_WAVE] = down
        for ch in range(n_channels):
            row = memory[ch]
            cr = row[CLIP_RESULT_AT:OPAMP_AT]
            complete_down(clip_map, row[CLIP_Z_AT:PRE_RESULT_AT], CLIP_ROWS, CLIP_COLUMNS,
                          CLIP_STATES, cr[PAIR_WAVE], cr)
            # 4. summing amp: the four branch currents through R20 || C13 (whose current, from
            # the output into the summing node, is g13 v_out - h13)
            op = row[OPAMP_AT:ADAA_AT]
            i_sum = row[PRE_RESULT_AT + PRE_STATES + 1] + cr[CLIP_STATES]
            h13 = companion_history(g13, op[V13], op[I13:])
            v_out = min(max((h13 - i_sum) * inv_y20, sum_low), sum_high)
            op[V13] = v_out
            remember_current(op[I13:], g13 * v_out - h13)
            y[ch, t] = v_out
    for ch in range(n_channels):
        row = memory[ch]
        finite = _flush(row[PRE_Z_AT:CLIP_Z_AT], PRE_STATES)
        finite &= _flush(row[CLIP_Z_AT:PRE_RESULT_AT], CLIP_STATES)
        finite &= _flush(row[OPAMP_AT:ADAA_AT], OPAMP_STATES)
        for i in range(ADAA_AT, MEMORY_SIZE):
            finite &= np.isfinite(row[i])
        if not finite:  # never seen; but NaN must not stick: this channel restarts from rest
            row[:] = 0.0
            if antialiasing:
                set_antialiasing_memory(row[ADAA_AT:MEMORY_SIZE], 0.0, clip_root, port)


@njit(cache=True, inline="always")
def _flush(a, n):
    """a[:n] below TINY set to zero; False if any of it is NaN or Inf."""
    finite = True
    for i in range(n):
        v = a[i]
        if abs(v) < TINY:
            a[i] = 0.0
        elif not np.isfinite(v):
            finite = False
    return finite


@njit(cache=True, error_model="numpy", inline="always")
def clamp_excess_antiderivative(u, low, high):
    """D(u) = (u - high)^2 / 2 above high, (u - low)^2 / 2 below low, 0 between: an
    antiderivative of the clamp's excess, u - clamp(u, low, high)."""
    if u > high:
        return 0.5 * (u - high) * (u - high)
    if u < low:
        return 0.5 * (u - low) * (u - low)
    return 0.0


@njit(cache=True, error_model="numpy", inline="always")
def mean_clamp(u0, u1, low, high):
    """The mean of clamp(u, low, high) over the segment from u0 to u1 (its value at u0 if they
    are equal): the segment's mean less the excess's, (D(u1) - D(u0)) / (u1 - u0), in closed form
    where both ends are on one side of the limits, so no difference of near-equal numbers is ever
    divided by a short segment. A segment that crosses a limit is at least as long as its part
    beyond it, so there the plain quotient is safe."""
    if u0 > high and u1 > high:
        return high
    if u0 < low and u1 < low:
        return low
    if low <= u0 <= high and low <= u1 <= high:
        return 0.5 * (u0 + u1)
    return 0.5 * (u0 + u1) - ((clamp_excess_antiderivative(u1, low, high)
                               - clamp_excess_antiderivative(u0, low, high)) / (u1 - u0))


@njit(cache=True, error_model="numpy", inline="always")
def antialiased_clamp(u0, u1, low, high):
    """clamp(u1, low, high) with first-order ADAA kept in step with the sample, as
    klon.wdf.tree.antialiased_diode_pair: the clamp's mean over the segment from the previous
    input u0, plus half the plain clamp's change. Inside the limits it is u1 exactly, deep
    beyond one it is that limit exactly; only a segment that crosses a limit is changed."""
    return (mean_clamp(u0, u1, low, high)
            + 0.5 * (min(max(u1, low), high) - min(max(u0, low), high)))


@njit(cache=True)
def clamp_into(x, out, low, high):
    """out[:, :frames] = x clamped to [low, high] (x channels x frames)."""
    for ch in range(x.shape[0]):
        for t in range(x.shape[1]):
            out[ch, t] = min(max(x[ch, t], low), high)


class PedalWork(NamedTuple):
    """The circuit chain's work buffers: a piece of a block at the base rate, and at the
    oversampled rate the gain stage's input (high[:, 0]) and output (high[:, 1])."""

    low: np.ndarray  # channels x frames
    high: np.ndarray  # channels x 2 x frames * the oversampling factor


@njit(cache=True, error_model="numpy")
def run_circuit_pedal(x, y, start, stop, work, stages, oversampler, gain_stage):
    """Frames start..stop of a block through every stage of the circuit engine's pedal: one
    compiled call, so a block costs one dispatch however many stages there are. Refuses
    (returns False, touching nothing) if the input holds NaN or Inf. The state arrives as plain
    tuples (klon.core.kernel_state) and arrays (share_memory's, the stage's two) and is named
    here."""
    work, stages = PedalWork(*work), name_stages(stages)
    factor = work.high.shape[2] // work.low.shape[1]
    n = stop - start
    for ch in range(x.shape[0]):
        for t in range(n):
            v = x[ch, start + t]
            if not np.isfinite(v):
                return False
            work.low[ch, t] = v
    a = work.low[:, :n]
    h = work.high[:, 0, :n * factor]
    ho = work.high[:, 1, :n * factor]
    run_stage(INPUT_BUFFER, a, a, stages.input_buffer)
    if factor == 1:  # no oversampling
        run_gain_stage(a, a, gain_stage)
        run_stage(TONE, a, a, stages.tone)
    else:
        upsample(a, h, oversampler)
        run_gain_stage(h, ho, gain_stage)
        run_stage(TONE, ho, ho, stages.tone)
        downsample(ho, a, oversampler)
    run_stage(OUTPUT_STAGE, a, a, stages.output_stage)
    for ch in range(x.shape[0]):
        for t in range(n):
            y[ch, start + t] = a[ch, t]
    return True


def circuit_gain_stage(sample_rate: float, gain: float = 0.5, diode: str | None = None,
                       oversampling: int | None = None, models=None, model=None) -> "GainStage":
    """The circuit engine's gain stage for a pedal (see klon.pedal.centaur.GAIN_STAGES)."""
    if models is not None or model is not None:
        raise KlonError("models= and model= choose the neural engine's models: "
                        "pass engine='neural'")
    return GainStage(sample_rate, gain, "1n34a" if diode is None else diode, oversampling)


class GainStage(Processor):
    """The Klon gain stage alone: volts in (the input buffer's output, AC), volts out (U2A's
    output, AC, sign included: the summing amp inverts).

    Streaming lags by `latency` samples (the oversampling filters); calling the object on a
    whole array removes the lag. antialiasing=False runs the diode pair and U1B's clamp plain
    (without ADAA), for comparison.
    """

    engine = "circuit"
    gain = Knob("Gain, 0..1: the dual-gang pot (gang A in U1B's feedback leg, gang B in FF2)")

    def __init__(self, sample_rate: float, gain: float = 0.5, diode: str = "1n34a",
                 oversampling: int | None = None, channels: int = 1, antialiasing: bool = True):
        self.sample_rate = float(sample_rate)
        self.diode = c.diode(diode)
        self.oversampling = (default_oversampling(sample_rate) if oversampling is None
                             else oversampling)
        if self.oversampling not in (1, 2, 4):
            raise KlonError(f"oversampling must be 1, 2 or 4, got {oversampling}")
        self.channels = channels
        self.init_knobs(gain=gain)
        self.glide = self.glides["gain"]
        high_rate = self.sample_rate * self.oversampling
        self.preamp, gang_a_top = build_preamp_tree(high_rate)
        self.clipper, gang_b_top, gang_b_bottom = build_clipper_tree(high_rate, self.diode)
        self.gang_a_top = self.preamp.pot(gang_a_top)
        self.gang_b_top = self.clipper.pot(gang_b_top)
        self.gang_b_bottom = self.clipper.pot(gang_b_bottom)
        g7, g8 = (2.0 * cap * high_rate for cap in (c.C7, c.C8))  # trapezoidal
        g13 = c.C13 * high_rate / WIDEBAND_WEIGHTS[0]  # the wide-band rule
        self.params = np.zeros(PARAMS_SIZE)
        self.coef = self.params[:COEF_SIZE]
        self.coef[ANTIALIASING] = 1.0 if antialiasing else 0.0
        self.coef[[Y7, G7, Y8, G8, Y20, G13]] = (1 / c.R11 + g7, g7, 1 / c.R12 + g8, g8,
                                                 1 / c.R20 + g13, g13)
        self.coef[[AMP_LOW, AMP_HIGH]] = c.output_limits(c.U1_RAILS)
        self.coef[[SUM_LOW, SUM_HIGH]] = c.output_limits(c.U2_RAILS)
        assert (self.preamp.n_states, self.clipper.n_states) == (PRE_STATES, CLIP_STATES)
        self.params[CLIP_ROOT_AT:] = self.clipper.root_params
        views = gain_stage_state(self.params, np.zeros((0, MEMORY_SIZE)))
        self.pre_map, self.clip_map = views.pre_map, views.clip_map
        self._set_pots(self.glide.item(CURRENT))
        self._allocate_state()

    @property
    def antialiasing(self) -> bool:
        """Whether the nonlinearities run with ADAA (set when the stage is made)."""
        return self.coef[ANTIALIASING] != 0.0

    def describe(self) -> str:
        return "" if self.antialiasing else ", antialiasing=False"

    @property
    def tone_rate(self) -> float:
        """The rate the pedal's treble control runs at beside this stage: the oversampled one
        (at 44.1 kHz the bilinear transform would bend the +17 dB top octave by a few %)."""
        return self.sample_rate * self.oversampling

    def _set_pots(self, gain):
        top, bottom = c.pot_halves(c.GAIN_POT, gain)  # both >= POT_MINIMUM > 0
        self.gang_a_top.set(top)
        self.gang_b_top.set(top)
        self.gang_b_bottom.set(bottom)
        self.preamp.derive()
        self.clipper.derive()
        fold_source_root(self.preamp.matrix, self.pre_map)
        sum_outputs(self.clipper.matrix, self.clipper.n_states, self.clip_map)
        # gang A's bottom and R10: the series part of U1B's ground leg
        self.coef[RS] = bottom + c.R10
        self.coef[CLIP_PORT] = self.clipper.port_resistance

    def _allocate_state(self):
        channels = self.channels
        self.oversampler = Oversampler(self.oversampling, channels)
        memory = np.zeros((channels, MEMORY_SIZE))
        self.kernel_state = gain_stage_state(self.params, memory)
        self.coef[ADAA_PORT] = 0.0  # the kernel sets the anti-aliasing memory at rest
        self.kernel_args = (self.params, memory)
        self.prepare(0)

    def prepare(self, frames: int) -> None:
        """Work buffers for blocks of up to `frames` (grown, never shrunk)."""
        frames = max(frames, 256)
        self.capacity = frames
        f = self.oversampling
        self.work = PedalWork(np.zeros((self.channels, frames)),
                              np.zeros((self.channels, 2, frames * f)))
        # built once: a block then costs one dispatch with these very arrays
        self.pedal_args = (plain(self.work), self.oversampler.kernel_args, self.kernel_args)

    @property
    def latency(self) -> int:
        return self.oversampler.latency

    def reset(self, channels: int | None = None) -> None:
        """Back to rest, as if just switched on: all state cleared and the Gain at its value
        (a glide in progress ends there at once, as in the neural engine); a new channel count
        re-sizes the state."""
        if channels is not None and channels != self.channels:
            self.channels = channels
            self._allocate_state()
        if self.glide.item(REMAINING) > 0.0:
            self._set_pots(smoother_settle(self.glide))
        self.kernel_args[1][:] = 0.0  # every channel's memory
        self.coef[ADAA_PORT] = 0.0  # the kernel sets the anti-aliasing memory at rest
        self.oversampler.reset()

    def next_segment(self, start: int, n_frames: int) -> int:
        """The end of the piece of a block that begins at `start`, with the pots set for it:
        the whole block with the Gain at rest, else the rest of the glide's current step of
        RAMP_STEP samples (no generator: a streaming block makes no Python objects).

        Steps are counted from the sample where the glide began, and a step's pots are set
        (to the Gain where the step ends) when the step begins, so a block boundary inside a
        step changes nothing: blocks of 1 and of 512 give the same samples."""
        glide = self.glide
        remaining = glide.item(REMAINING)
        if remaining == 0.0:
            return n_frames
        into = int(self.glide_samples - remaining) % RAMP_STEP  # samples into this step
        if into == 0:
            self._set_pots(smoother_ahead(glide, RAMP_STEP))
        stop = start + RAMP_STEP - into
        if stop > n_frames:  # not min(): in Python 3.11 it makes an iterator
            stop = n_frames
        smoother_skip(glide, stop - start)
        return stop

    def render(self, x: np.ndarray, y: np.ndarray) -> None:
        frames = x.shape[1]
        if frames > self.capacity:
            self.prepare(frames)
        f = self.oversampling
        low, high, high_out = self.work.low, self.work.high[:, 0], self.work.high[:, 1]
        # the stage sees U1A's output, which cannot leave U1's swing (in the pedal the input
        # buffer clamps there); clamped here too, absurd inputs cannot overflow the solver
        clamp_into(x, low, INPUT_LIMITS[0], INPUT_LIMITS[1])
        x = low
        start = 0
        while start < frames:
            stop = self.next_segment(start, frames)
            n = (stop - start) * f
            self.oversampler.upsample(x[:, start:stop], high[:, :n])
            run_gain_stage(high[:, :n], high_out[:, :n], self.kernel_args)
            self.oversampler.downsample(high_out[:, :n], y[:, start:stop])
            start = stop

    def run_pedal(self, x: np.ndarray, y: np.ndarray, stages: np.ndarray) -> bool:
        """The whole circuit pedal on a checked block (x, y channels x frames), this stage
        between the shared ones (share_memory's array); False if x holds NaN or Inf."""
        frames = x.shape[1]
        if frames > self.capacity:
            self.prepare(frames)
        work, oversampler, state = self.pedal_args
        if self.glide.item(REMAINING) == 0.0:  # the Gain at rest: the whole block in one call
            return run_circuit_pedal(x, y, 0, frames, work, stages, oversampler, state)
        start = 0
        while start < frames:
            stop = self.next_segment(start, frames)
            if not run_circuit_pedal(x, y, start, stop, work, stages, oversampler, state):
                return False
            start = stop
        return True
