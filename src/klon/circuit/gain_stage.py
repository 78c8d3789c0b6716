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

Everything runs at the oversampled rate in one compiled kernel; a moving Gain knob is smoothed per
sample and the WDF maps are re-derived every few samples while it moves.
"""
import numpy as np
from numba import njit

from .. import wdf
from ..dsp.oversampling import Oversampler
from ..dsp.smoothing import smoother_next, smoother_set_target
from ..errors import KlonError
from ..wdf.tree import VALUE, derive_state_space, state_space_step
from . import components as c
from .linear_stages import check_knob

UPDATE_INTERVAL = 8  # oversampled samples between re-derivations while Gain moves
SMOOTHING_SECONDS = 0.05


def default_oversampling(sample_rate):
    """Run the nonlinear part at 88.2 kHz or more."""
    return 4 if sample_rate < 44_100 else 2


class _Tree:
    """A WDF plus the indices the kernel needs to move its pots."""

    def __init__(self, root, top, sample_rate, outputs, pots):
        self.wdf = wdf.WDF(root, top, sample_rate, outputs)
        self.pot_index = np.array([self.wdf.index_of(p) for p in pots], dtype=np.int64)

    def kernel_args(self):
        w = self.wdf
        return (w.topology, w.children, w.order, w.nodes, 1.0 / w.sample_rate, len(w.source_names),
                w.output_nodes, w.output_quantities, *w._probe, w.matrix, self.pot_index,
                w.root_kind, w.root_source, w.root_params)


def build_preamp_tree(sample_rate, gain):
    top_a, _ = c.pot_halves(c.GAIN_POT, gain)
    r19, gang_a_top = wdf.Resistor(c.R19), wdf.Resistor(top_a)
    top = wdf.Series(
        wdf.Capacitor(c.C3),
        wdf.Parallel(
            wdf.Series(wdf.Resistor(c.R7), wdf.Parallel(wdf.Capacitor(c.C16), r19)),
            wdf.Series(wdf.Parallel(wdf.Resistor(c.R6), wdf.Capacitor(c.C5)), gang_a_top),
        ),
    )
    outputs = [(gang_a_top, "voltage"), (r19, "current")]  # U1B + input, FF1 current
    return _Tree(wdf.IdealVoltageSourceRoot("vi"), top, sample_rate, outputs, [gang_a_top])


def build_clipper_tree(sample_rate, gain, diode):
    top_b, bottom_b = c.pot_halves(c.GAIN_POT, gain)
    gang_b_top, gang_b_bottom = wdf.Resistor(top_b), wdf.Resistor(bottom_b)
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
    # the junction capacitance of the pair (both diodes at zero bias) sits across the junctions
    top = wdf.Parallel(wdf.Capacitor(2.0 * diode.junction_capacitance), network)
    root = wdf.DiodePairRoot(diode.saturation_current, diode.ideality, c.THERMAL_VOLTAGE)
    outputs = [(r16, "current"), (r17, "current"), (r18, "current")]  # into the summing node
    return _Tree(root, top, sample_rate, outputs, [gang_b_top, gang_b_bottom])


@njit(cache=True, error_model="numpy")
def _move_pots(gain, pre, clip, amp_coefficients):
    top = max(c.GAIN_POT * gain, c.POT_MINIMUM)
    bottom = max(c.GAIN_POT * (1.0 - gain), c.POT_MINIMUM)
    pre[3][pre[12][0], VALUE] = top
    clip[3][clip[12][0], VALUE] = top
    clip[3][clip[12][1], VALUE] = bottom
    amp_coefficients[0] = bottom + c.R10  # series part of U1B's ground leg
    for t in (pre, clip):
        derive_state_space(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9], t[10], t[11])


@njit(cache=True, error_model="numpy")
def _run(x, y, pre, pre_z, pre_result, clip, clip_z, clip_result, amp_coefficients, amp_state,
         sum_state, smoother):
    """x, y: channels x frames at the oversampled rate; every state array has a row per channel
    (separate rows let the CPU overlap the channels' dependency chains)."""
    y7, g7, y8, g8 = amp_coefficients[1], amp_coefficients[2], amp_coefficients[3], amp_coefficients[4]
    y20, g13 = amp_coefficients[5], amp_coefficients[6]
    amp_lo, amp_hi = amp_coefficients[7], amp_coefficients[8]
    sum_lo, sum_hi = amp_coefficients[9], amp_coefficients[10]
    n_pre = pre_result.shape[1] - 2  # states of the pre-amp tree (it has two outputs)
    n_clip = clip_result.shape[1] - 3  # states of the clipper tree (three outputs)
    pre_port = pre[3][pre[2][pre[2].shape[0] - 1], 1]
    clip_port = clip[3][clip[2][clip[2].shape[0] - 1], 1]
    n_channels, n_frames = x.shape
    for t in range(n_frames):
        if smoother[3] > 0.0:
            gain = smoother_next(smoother)
            if smoother[3] == 0.0 or t % UPDATE_INTERVAL == 0:
                _move_pots(gain, pre, clip, amp_coefficients)
                pre_port = pre[3][pre[2][pre[2].shape[0] - 1], 1]
                clip_port = clip[3][clip[2][clip[2].shape[0] - 1], 1]
        rs = amp_coefficients[0]
        for ch in range(n_channels):
            vi = x[ch, t]
            # 1. pre-amp + FF1: U1B's + input and the current through R19
            pz = pre_z[ch]
            pr = pre_result[ch]
            pz[n_pre] = vi
            state_space_step(pre[11], pz, n_pre, 1, pre[13], pre[14], pre[15], pre_port, pr)
            v_plus = pr[n_pre]
            # 2. amp stage: i_leg = current down the ground leg, h7/h8 the capacitors' histories
            h7 = amp_state[ch, 0]
            h8 = amp_state[ch, 1]
            k = y7 / (1.0 + y7 * rs)
            m = h7 / (1.0 + y7 * rs)
            v_minus = v_plus
            i_leg = k * v_minus - m
            v_amp = v_minus + (i_leg + h8) / y8
            if v_amp > amp_hi or v_amp < amp_lo:
                v_amp = amp_hi if v_amp > amp_hi else amp_lo
                v_minus = (y8 * v_amp - h8 + m) / (y8 + k)
                i_leg = k * v_minus - m
            v7 = v_minus - rs * i_leg
            amp_state[ch, 0] = 2.0 * g7 * v7 - h7
            amp_state[ch, 1] = 2.0 * g8 * (v_amp - v_minus) - h8
            # 3. clipper + FF2, driven by U1B's output and vi
            cz = clip_z[ch]
            cr = clip_result[ch]
            cz[n_clip] = v_amp
            cz[n_clip + 1] = vi
            state_space_step(clip[11], cz, n_clip, 2, clip[13], clip[14], clip[15], clip_port, cr)
            # 4. summing amp: the four branch currents through R20 || C13
            i_sum = pr[n_pre + 1] + cr[n_clip] + cr[n_clip + 1] + cr[n_clip + 2]
            h13 = sum_state[ch, 0]
            v_out = -(i_sum + h13) / y20
            if v_out > sum_hi:
                v_out = sum_hi
            elif v_out < sum_lo:
                v_out = sum_lo
            sum_state[ch, 0] = -2.0 * g13 * v_out - h13
            y[ch, t] = v_out


class GainStage:
    """The Klon gain stage alone: volts in (the input buffer's output, AC), volts out (U2A's output, AC).

    The output is the physical voltage, sign included (the summing amp inverts). Streaming has
    `latency` samples of delay from the oversampling filters; calling the object on a whole array
    removes it.
    """

    def __init__(self, sample_rate, gain=0.5, diode="1n34a", oversampling=None, channels=1):
        self.sample_rate = float(sample_rate)
        self.diode = _diode(diode)
        self.oversampling = default_oversampling(sample_rate) if oversampling is None else oversampling
        self.channels = channels
        high_rate = self.sample_rate * self.oversampling
        gain = check_knob("gain", gain)
        self._pre = build_preamp_tree(high_rate, gain)
        self._clip = build_clipper_tree(high_rate, gain, self.diode)
        period = 1.0 / high_rate
        g7, g8, g13 = 2 * c.C7 / period, 2 * c.C8 / period, 2 * c.C13 / period
        amp_lo, amp_hi = c.output_limits(c.U1_RAILS)
        sum_lo, sum_hi = c.output_limits(c.U2_RAILS)
        self._amp = np.array([0.0, 1 / c.R11 + g7, g7, 1 / c.R12 + g8, g8, 1 / c.R20 + g13, g13,
                              amp_lo, amp_hi, sum_lo, sum_hi])
        self._smoother = np.zeros(4)
        self._smoother[:2] = gain
        self._ramp_samples = int(round(SMOOTHING_SECONDS * high_rate))
        self._pre_args = self._pre.kernel_args()
        self._clip_args = self._clip.kernel_args()
        self._allocate_state()
        _move_pots(gain, self._pre_args, self._clip_args, self._amp)

    @property
    def latency(self):
        return self._oversampler.latency

    @property
    def gain(self):
        return self._smoother[1]

    @gain.setter
    def gain(self, value):
        smoother_set_target(self._smoother, check_knob("gain", value), self._ramp_samples)

    def reset(self, channels=None):
        """Clear all state; a channel count re-sizes the per-channel state."""
        if channels is not None and channels != self.channels:
            self.channels = channels
            self._allocate_state()
        for s in (self._pre_z, self._clip_z, self._amp_state, self._sum_state):
            s[:] = 0.0
        self._oversampler.reset()

    def _allocate_state(self):
        self._oversampler = Oversampler(self.oversampling, self.channels)
        pre, clip = self._pre.wdf, self._clip.wdf
        self._pre_z = np.zeros((self.channels, pre.n_states + 2))
        self._pre_result = np.zeros((self.channels, pre.n_states + 2))
        self._clip_z = np.zeros((self.channels, clip.n_states + 3))
        self._clip_result = np.zeros((self.channels, clip.n_states + 3))
        self._amp_state = np.zeros((self.channels, 2))
        self._sum_state = np.zeros((self.channels, 1))
        self._high = np.zeros((2, self.channels, 0))

    def process(self, block, out=None):
        """Stream a block (1-D mono, or channels x frames); state carries over. A new channel
        count resets the state."""
        x = np.asarray(block, dtype=np.float64)
        x2 = x.reshape(1, -1) if x.ndim == 1 else x
        if x2.shape[0] != self.channels:
            self.reset(x2.shape[0])
        high_n = x2.shape[1] * self.oversampling
        if self._high.shape[2] < high_n:
            self._high = np.zeros((2, self.channels, high_n))
        high = self._high[0, :, :high_n]
        high_out = self._high[1, :, :high_n]
        self._oversampler.upsample(x2, high)
        _run(high, high_out, self._pre_args, self._pre_z, self._pre_result, self._clip_args,
             self._clip_z, self._clip_result, self._amp, self._amp_state, self._sum_state,
             self._smoother)
        if out is None:
            out = np.empty(x.shape)
        self._oversampler.downsample(high_out, out.reshape(x2.shape))
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
