"""The gain stage: pre-amp + FF1, amp stage, clipper + FF2, summing amp (U1B and U2A).

With U2A ideal its inverting input is a virtual ground, so the stage splits, exactly, into parts
that run one after the other each sample (all AC volts around the 4.5 V bias):

1. pre-amp + FF1 (linear WDF, driven by the buffer output vi): gives U1B's + input (at the op-amp
   pin, not at the C3/R6/R7 junction) and the FF1 current through R19 into the summing node.
2. amp stage (U1B, non-inverting, feedback R12 || C8, ground leg gang A bottom + R10 + R11 || C7):
   nodal analysis with trapezoidal capacitors. Its output is clamped at U1B's swing; while clamped
   the feedback network is driven by the clamped output, so C7 and C8 hold what the real circuit
   holds and recovery is right.
3. clipper + FF2 (one WDF, rooted at the D2/D3 pair): the amp output through C9 + R13, C10, R16,
   the C11 + R15 branch into the gang B / R17 / C12 + R18 / R5 || C4 / R8 / C6 + R9 network, driven
   by both U1B's output and vi. One tree, so R16 and the R17, C12 + R18 currents are all seen.
4. summing amp (U2A): the three branch currents plus FF1's through R20 || C13, clamped at U2A's
   swing. (When U2A clamps, its summing node would leave virtual ground; only signals far above
   guitar level get there, and the clamp keeps them bounded.)

Everything runs at the oversampled rate in one compiled kernel. A moving Gain knob glides over
50 ms in steps of RAMP_STEP samples; at each step the pots move and the WDF maps are derived
anew (their capacitor states carry over untouched, so nothing jumps).
"""
import numpy as np
from numba import njit

from klon import wdf
from klon.dsp.oversampling import Oversampler
from klon.dsp.smoothing import smoother_set_target, smoother_skip
from klon.core.errors import KlonError
from klon.wdf.elements import ROOT_DIODE_PAIR, ROOT_IDEAL_VOLTAGE_SOURCE
from klon.wdf.tree import VALUE, state_space_step
from klon.pedal import components as c
from klon.pedal.stages import check_knob

SMOOTHING_SECONDS = 0.05
RAMP_STEP = 16  # base-rate samples per Gain step while the knob glides (0.36 ms at 44.1 kHz)

# layout of the coefficient array the kernel reads
(RS, Y7, G7, Y8, G8, Y20, G13, AMP_LOW, AMP_HIGH, SUM_LOW, SUM_HIGH, PRE_PORT,
 CLIP_PORT) = range(13)


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


@njit(cache=True, error_model="numpy")
def run_gain_stage(x, y, coef, pre_matrix, clip_matrix, clip_root, pre_z, clip_z, pre_result,
                   clip_result, opamp_state):
    """x, y: channels x frames at the oversampled rate. Every state array has a row per channel
    (separate rows let the CPU overlap the channels' dependency chains)."""
    n_pre = pre_result.shape[1] - 2  # states of the pre-amp tree (it has two outputs)
    n_clip = clip_result.shape[1] - 3  # states of the clipper tree (three outputs)
    rs, y7, g7, y8, g8 = coef[RS], coef[Y7], coef[G7], coef[Y8], coef[G8]
    y20, g13 = coef[Y20], coef[G13]
    amp_low, amp_high, sum_low, sum_high = coef[AMP_LOW], coef[AMP_HIGH], coef[SUM_LOW], coef[SUM_HIGH]
    leg = 1.0 / (1.0 + y7 * rs)
    k = y7 * leg
    inv_y8 = 1.0 / y8
    inv_y20 = 1.0 / y20
    inv_divider = 1.0 / (y8 + k)
    n_channels, n_frames = x.shape
    for t in range(n_frames):
        for ch in range(n_channels):
            vi = x[ch, t]
            # 1. pre-amp + FF1: U1B's + input and the current through R19
            pz = pre_z[ch]
            pr = pre_result[ch]
            pz[n_pre] = vi
            state_space_step(pre_matrix, pz, n_pre, 1, ROOT_IDEAL_VOLTAGE_SOURCE, 0, clip_root,
                             coef[PRE_PORT], pr)
            # 2. amp stage: i_leg = current down the ground leg, h7/h8 the capacitors' histories
            h7 = opamp_state[ch, 0]
            h8 = opamp_state[ch, 1]
            m = h7 * leg
            v_plus = pr[n_pre]
            # in the linear range v- = v+; past the swing the clamped output drives the divider
            # and v- follows. The divider formula gives v- = v+ for an unclamped output, so one
            # branch-free path serves both.
            v_amp = min(max(v_plus + (k * v_plus - m + h8) * inv_y8, amp_low), amp_high)
            v_minus = (y8 * v_amp - h8 + m) * inv_divider
            i_leg = k * v_minus - m
            opamp_state[ch, 0] = 2.0 * g7 * (v_minus - rs * i_leg) - h7
            opamp_state[ch, 1] = 2.0 * g8 * (v_amp - v_minus) - h8
            # 3. clipper + FF2, driven by U1B's output and vi
            cz = clip_z[ch]
            cr = clip_result[ch]
            cz[n_clip] = v_amp
            cz[n_clip + 1] = vi
            state_space_step(clip_matrix, cz, n_clip, 2, ROOT_DIODE_PAIR, -1, clip_root,
                             coef[CLIP_PORT], cr)
            # 4. summing amp: the four branch currents through R20 || C13
            i_sum = pr[n_pre + 1] + cr[n_clip] + cr[n_clip + 1] + cr[n_clip + 2]
            h13 = opamp_state[ch, 2]
            v_out = min(max(-(i_sum + h13) * inv_y20, sum_low), sum_high)
            opamp_state[ch, 2] = -2.0 * g13 * v_out - h13
            y[ch, t] = v_out


class GainStage:
    """The Klon gain stage alone: volts in (the input buffer's output, AC), volts out (U2A's
    output, AC, sign included: the summing amp inverts).

    Streaming lags by `latency` samples (the oversampling filters); calling the object on a
    whole array removes the lag.
    """

    def __init__(self, sample_rate, gain=0.5, diode="1n34a", oversampling=None, channels=1):
        self.sample_rate = float(sample_rate)
        self.diode = _diode(diode)
        self.oversampling = default_oversampling(sample_rate) if oversampling is None else oversampling
        if self.oversampling not in (1, 2, 4):
            raise KlonError(f"oversampling must be 1, 2 or 4, got {oversampling}")
        self.channels = channels
        high_rate = self.sample_rate * self.oversampling
        gain = check_knob("gain", gain)
        self._pre, self._gang_a_top = build_preamp_tree(high_rate)
        self._clip, self._gang_b_top, self._gang_b_bottom = build_clipper_tree(high_rate, self.diode)
        self.clip_root = self._clip.root_params
        g7, g8, g13 = (2.0 * cap * high_rate for cap in (c.C7, c.C8, c.C13))
        self.coef = np.zeros(13)
        self.coef[[Y7, G7, Y8, G8, Y20, G13]] = (1 / c.R11 + g7, g7, 1 / c.R12 + g8, g8,
                                                 1 / c.R20 + g13, g13)
        self.coef[[AMP_LOW, AMP_HIGH]] = c.output_limits(c.U1_RAILS)
        self.coef[[SUM_LOW, SUM_HIGH]] = c.output_limits(c.U2_RAILS)
        self.smoother = np.array([gain, gain, 0.0, 0.0])
        self._ramp_samples = int(round(SMOOTHING_SECONDS * self.sample_rate))
        # the Gain pot's rows in the trees' node tables, written in place while the knob glides
        # (set_resistances' dicts would make Python objects every RAMP_STEP samples)
        self._gang_rows = (self._pre.index_of(self._gang_a_top),
                           self._clip.index_of(self._gang_b_top),
                           self._clip.index_of(self._gang_b_bottom))
        self._apply_gain(gain)
        self._allocate_state()

    def _apply_gain(self, gain):
        top, bottom = c.pot_halves(c.GAIN_POT, gain)  # both >= POT_MINIMUM > 0
        a_top, b_top, b_bottom = self._gang_rows
        self._pre.nodes[a_top, VALUE] = top
        self._clip.nodes[b_top, VALUE] = top
        self._clip.nodes[b_bottom, VALUE] = bottom
        self._pre.derive()
        self._clip.derive()
        self.coef[RS] = bottom + c.R10  # gang A's bottom and R10: the series part of U1B's ground leg
        self.coef[PRE_PORT] = self._pre.port_resistance
        self.coef[CLIP_PORT] = self._clip.port_resistance

    def _allocate_state(self):
        n_pre, n_clip = self._pre.n_states, self._clip.n_states
        self.oversampler = Oversampler(self.oversampling, self.channels)
        self.pre_z = np.zeros((self.channels, n_pre + 2))
        self.pre_result = np.zeros((self.channels, n_pre + 2))
        self.clip_z = np.zeros((self.channels, n_clip + 3))
        self.clip_result = np.zeros((self.channels, n_clip + 3))
        self.opamp_state = np.zeros((self.channels, 3))  # C7, C8, C13 histories
        self._high = np.zeros((2, self.channels, 0))

    @property
    def latency(self):
        return self.oversampler.latency

    @property
    def gain(self):
        return self.smoother[1]

    @gain.setter
    def gain(self, value):
        smoother_set_target(self.smoother, check_knob("gain", value), self._ramp_samples)

    def reset(self, channels=None):
        """Clear all state; a new channel count re-sizes it."""
        if channels is not None and channels != self.channels:
            self.channels = channels
            self._allocate_state()
        for s in (self.pre_z, self.clip_z, self.opamp_state):
            s[:] = 0.0
        self.oversampler.reset()

    def segments(self, n_frames):
        """(start, stop) pieces of a block, each with the pots set for it: one piece unless
        the Gain knob is gliding, then one per RAMP_STEP samples."""
        if self.smoother[3] == 0.0:
            yield 0, n_frames
            return
        start = 0
        while start < n_frames:
            stop = self.next_segment(start, n_frames)
            yield start, stop
            start = stop

    def next_segment(self, start, n_frames):
        """While the Gain glides: the end of the piece of a block that begins at `start`, with
        the pots set for it (what `segments` yields, without a generator: a streaming block then
        makes no Python objects)."""
        stop = start + RAMP_STEP
        if stop > n_frames:  # not min(): in Python 3.11 it makes an iterator
            stop = n_frames
        if self.smoother.item(3) > 0.0:
            self._apply_gain(smoother_skip(self.smoother, stop - start))
        return stop

    def kernel_args(self):
        """What run_gain_stage needs besides the audio."""
        return (self.coef, self._pre.matrix, self._clip.matrix, self.clip_root, self.pre_z,
                self.clip_z, self.pre_result, self.clip_result, self.opamp_state)

    def process(self, block, out=None):
        """Stream a block (1-D mono, or channels x frames); state carries over. A new channel
        count resets the state."""
        x = np.asarray(block, dtype=np.float64)
        x2 = x.reshape(1, -1) if x.ndim == 1 else x
        if x2.shape[0] != self.channels:
            self.reset(x2.shape[0])
        n = x2.shape[1]
        if self._high.shape[2] < n * self.oversampling:
            self._high = np.zeros((2, self.channels, n * self.oversampling))
        if out is None:
            out = np.empty(x.shape)
        out2 = out.reshape(x2.shape)
        f = self.oversampling
        for start, stop in self.segments(n):
            high = self._high[0, :, :(stop - start) * f]
            high_out = self._high[1, :, :(stop - start) * f]
            self.oversampler.upsample(x2[:, start:stop], high)
            run_gain_stage(high, high_out, *self.kernel_args())
            self.oversampler.downsample(high_out, out2[:, start:stop])
        return out

    def __call__(self, audio):
        """A whole signal, aligned with its input (the oversampling latency removed)."""
        return offline(self, audio)


def offline(processor, audio):
    """Process a whole array with fresh state and no latency; keeps the input's layout."""
    x = np.asarray(audio)
    x2 = x.reshape(1, -1) if x.ndim == 1 else x
    latency = processor.latency
    padded = np.concatenate([x2, np.zeros((x2.shape[0], latency), dtype=x2.dtype)], axis=1)
    processor.reset(x2.shape[0])
    y = processor.process(padded)[:, latency:]
    return y[0] if x.ndim == 1 else y


def _diode(name):
    try:
        return c.DIODES[name.lower()]
    except (KeyError, AttributeError):
        raise KlonError(f"unknown diode {name!r}: choose one of {', '.join(c.DIODES)}") from None
