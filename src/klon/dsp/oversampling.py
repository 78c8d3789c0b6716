"""Linear-phase 2x and 4x oversampling with half-band FIR filters.

Each 2x step is a half-band filter h of length 4K - 1: every other tap is zero except the centre
(0.5), so in polyphase form one branch is a pure delay and the other holds 2K symmetric taps,
K multiplies per sample. 4x is two 2x steps; the second step only has to remove images far
from the audio band, so it is much shorter.

A half-band filter's response satisfies H(f) + H(fs/2 - f) = 1, so it is designed from a
one-band type II filter g (length 2K): h = (delta_centre + g(z^2)) / 2. Its passband edge is
fs_base * 0.43 and the stopband starts at fs_base * 0.57 (base rate units).

Each stage keeps its history at the front of a work array. A block is walked through in chunks
of up to CHUNK samples: they are appended after the history, filtered with the taps in the outer
loop (so the inner loop runs over contiguous samples and vectorises), and the newest history is
moved to the front. Any block size works, and nothing is allocated per call.
"""
from typing import NamedTuple

import numpy as np
from numba import njit

from klon.core.errors import KlonError

PASSBAND_EDGE = 0.43  # of the base sample rate
STAGE1_HALF = 21  # K for base <-> 2x: 83 taps, > 90 dB stopband
STAGE2_HALF = 7  # K for 2x <-> 4x: 27 taps, > 95 dB stopband
CHUNK = 128  # base-rate samples per inner pass; longer blocks are walked through in chunks


# The half-band branches: scipy.signal.remez(2K, [0, 2 * edge], [1], fs=1), normalised to sum 1
# so DC passes at exactly unit gain. Stored, because importing scipy.signal takes a second
# per process; tests/test_dsp.py designs them again and compares.
STAGE1_BRANCH = np.array([  # K = STAGE1_HALF, passband to PASSBAND_EDGE / 2
    4.879167952008719e-05, -0.0001191360898017957, 0.0002572517219832948, -0.0004918879158487911,
    0.0008654922504469964, -0.0014314151184145329, 0.002254834735795265, -0.0034142649424690097,
    0.005003231596037734, -0.007133567389080642, 0.009941218348182491, -0.01359699659628681,
    0.01832713442935162, -0.024452367193519852, 0.03246603362096758, -0.04320051756295054,
    0.05821841188241976, -0.08087666553728147, 0.1199454914109408, -0.20769998469136436,
    0.6350889113613721, 0.6350889113613721, -0.20769998469136436, 0.1199454914109408,
    -0.08087666553728147, 0.05821841188241976, -0.04320051756295054, 0.03246603362096758,
    -0.024452367193519852, 0.01832713442935162, -0.01359699659628681, 0.009941218348182491,
    -0.007133567389080642, 0.005003231596037734, -0.0034142649424690097, 0.002254834735795265,
    -0.0014314151184145329, 0.0008654922504469964, -0.0004918879158487911, 0.0002572517219832948,
    -0.0001191360898017957, 4.879167952008719e-05,
])
STAGE2_BRANCH = np.array([  # K = STAGE2_HALF, passband to (1 - PASSBAND_EDGE) / 4
    0.00041748050773082605, -0.0027481809670679377, 0.01049932074248161, -0.030150484310521156,
    0.07368062174185998, -0.17489286051000946, 0.6231941027955261, 0.6231941027955261,
    -0.17489286051000946, 0.07368062174185998, -0.030150484310521156, 0.01049932074248161,
    -0.0027481809670679377, 0.00041748050773082605,
])
STAGE1_BRANCH.flags.writeable = STAGE2_BRANCH.flags.writeable = False


def stage_taps(factor):
    """Branch taps for each 2x step of this factor: [] for 1, [g1] for 2, [g1, g2] for 4."""
    steps = []
    if factor >= 2:
        steps.append(STAGE1_BRANCH)
    if factor == 4:
        # 2x -> 4x only has to reject the images of the 2x-rate spectrum: pass to 0.57 fs_base,
        # stop from 1.43 fs_base, where the first step's own stopband ends.
        steps.append(STAGE2_BRANCH)
    return steps


@njit(cache=True)
def _interpolate(w, hist, count, g_half, delay, acc):
    """Dense half-band branch over a chunk: w[hist:hist + count] holds new samples after `hist`
    older ones; acc[t] = sum_i g[i] w[hist + t - delay - i] (g symmetric, 2n taps).
    Taps outside, samples inside, so the inner loop runs over contiguous memory (SIMD)."""
    n = g_half.shape[0]
    newest = hist - delay
    for t in range(count):
        acc[t] = 0.0
    for i in range(n):
        gi = g_half[i]
        near = w[newest - i:newest - i + count]
        far = w[newest - 2 * n + 1 + i:newest - 2 * n + 1 + i + count]
        for t in range(count):
            acc[t] += gi * (near[t] + far[t])


@njit(cache=True)
def _decimate(even, odd, hist, count, g_half, acc):
    """A half-band decimator over a chunk whose even / odd input phases sit (after `hist` older
    ones) in even and odd: acc[t] = (dense branch over even + odd delayed by n) / 2."""
    n = g_half.shape[0]
    _interpolate(even, hist, count, g_half, 0, acc)
    for t in range(count):
        acc[t] = 0.5 * (acc[t] + odd[hist + t - n])


@njit(cache=True)
def _shift(w, hist, count):
    """Keep the newest `hist` samples at the front for the next chunk."""
    for j in range(hist):
        w[j] = w[count + j]


# the half-band branches' first halves (they are symmetric): constants the kernels compile in
HALF1 = np.ascontiguousarray(STAGE1_BRANCH[:STAGE1_HALF])
HALF2 = np.ascontiguousarray(STAGE2_BRANCH[:STAGE2_HALF])
HALF1.flags.writeable = HALF2.flags.writeable = False
# Each channel's delay lines lie in one row of the state's `lines` (one array, not six: each
# array a block call passes costs its dispatch about 0.08 us), at these offsets; the second
# stage's lines are there at 2x too, unused. Each line keeps its history at the front.
HIST1 = 2 * STAGE1_HALF - 1  # base <-> 2x, up and down
HIST2_UP = 2 * STAGE2_HALF  # one more than the taps need: the delay that makes 4x's latency whole
HIST2_DOWN = 2 * STAGE2_HALF - 1
UP1_AT = 0
UP2_AT = UP1_AT + HIST1 + CHUNK
DOWN1_EVEN_AT = UP2_AT + HIST2_UP + 2 * CHUNK
DOWN1_ODD_AT = DOWN1_EVEN_AT + HIST1 + CHUNK
DOWN2_EVEN_AT = DOWN1_ODD_AT + HIST1 + CHUNK
DOWN2_ODD_AT = DOWN2_EVEN_AT + HIST2_DOWN + 2 * CHUNK
LINES = DOWN2_ODD_AT + HIST2_DOWN + 2 * CHUNK


class OversamplerState(NamedTuple):
    """What the up- and down-sampling kernels read and write."""

    lines: np.ndarray  # channels x LINES: each channel's delay lines
    acc: np.ndarray  # one chunk's sums


@njit(cache=True)
def upsample(x, out, s):
    """x (channels x n) -> out (channels x 2n or 4n, the factor) through the OversamplerState
    s (or it as a plain tuple)."""
    lines, acc = s
    if x.shape[1] == 0:
        return
    four = out.shape[1] == 4 * x.shape[1]
    for ch in range(x.shape[0]):
        w1 = lines[ch, UP1_AT:UP2_AT]
        w2 = lines[ch, UP2_AT:DOWN1_EVEN_AT]
        start = 0
        while start < x.shape[1]:
            count = min(CHUNK, x.shape[1] - start)
            for t in range(count):
                w1[HIST1 + t] = x[ch, start + t]
            _interpolate(w1, HIST1, count, HALF1, 0, acc)
            centre = HIST1 - STAGE1_HALF + 1
            if not four:
                for t in range(count):
                    out[ch, 2 * (start + t)] = acc[t]
                    out[ch, 2 * (start + t) + 1] = w1[centre + t]
            else:
                # the 2x signal goes straight into the second stage's delay line
                for t in range(count):
                    w2[HIST2_UP + 2 * t] = acc[t]
                    w2[HIST2_UP + 2 * t + 1] = w1[centre + t]
                _interpolate(w2, HIST2_UP, 2 * count, HALF2, 1, acc)
                centre2 = HIST2_UP - STAGE2_HALF
                for t in range(2 * count):
                    out[ch, 4 * start + 2 * t] = acc[t]
                    out[ch, 4 * start + 2 * t + 1] = w2[centre2 + t]
                _shift(w2, HIST2_UP, 2 * count)
            _shift(w1, HIST1, count)
            start += count


@njit(cache=True)
def downsample(x, out, s):
    """x (channels x 2n or 4n, the factor) -> out (channels x n) through the OversamplerState
    s (or it as a plain tuple)."""
    lines, acc = s
    if out.shape[1] == 0:
        return
    factor = x.shape[1] // out.shape[1]
    for ch in range(out.shape[0]):
        even1 = lines[ch, DOWN1_EVEN_AT:DOWN1_ODD_AT]
        odd1 = lines[ch, DOWN1_ODD_AT:DOWN2_EVEN_AT]
        even2 = lines[ch, DOWN2_EVEN_AT:DOWN2_ODD_AT]
        odd2 = lines[ch, DOWN2_ODD_AT:LINES]
        start = 0
        while start < out.shape[1]:
            count = min(CHUNK, out.shape[1] - start)
            high = factor * start
            if factor == 2:
                for t in range(count):
                    even1[HIST1 + t] = x[ch, high + 2 * t]
                    odd1[HIST1 + t] = x[ch, high + 2 * t + 1]
            else:
                for t in range(2 * count):
                    even2[HIST2_DOWN + t] = x[ch, high + 2 * t]
                    odd2[HIST2_DOWN + t] = x[ch, high + 2 * t + 1]
                _decimate(even2, odd2, HIST2_DOWN, 2 * count, HALF2, acc)
                for t in range(count):
                    even1[HIST1 + t] = acc[2 * t]
                    odd1[HIST1 + t] = acc[2 * t + 1]
                _shift(even2, HIST2_DOWN, 2 * count)
                _shift(odd2, HIST2_DOWN, 2 * count)
            _decimate(even1, odd1, HIST1, count, HALF1, acc)
            for t in range(count):
                out[ch, start + t] = acc[t]
            _shift(even1, HIST1, count)
            _shift(odd1, HIST1, count)
            start += count


class Oversampler:
    """Up- and down-sampling by 1, 2 or 4 for `channels` channels, streamed block by block.

    upsample(x, out): x channels x n -> out channels x factor*n.
    downsample(x_high, out): x_high channels x factor*n -> out channels x n.
    `latency` is the delay, in base-rate samples, of upsample followed by downsample.
    """

    def __init__(self, factor, channels=1):
        if factor not in (1, 2, 4):
            raise KlonError(f"oversampling factor must be 1, 2 or 4, got {factor}")
        if int(channels) < 1:
            raise KlonError(f"channel count must be at least 1, got {channels}")
        self.factor = int(factor)
        self.channels = int(channels)
        self.state = OversamplerState(np.zeros((self.channels, LINES)), np.zeros(2 * CHUNK))
        self.kernel_args = tuple(self.state)  # see klon.core.kernel_state

    @property
    def latency(self):
        """Round-trip (upsample then downsample) delay in base-rate samples."""
        if self.factor == 1:
            return 0
        if self.factor == 2:
            return HIST1  # up and down each delay by (4 K1 - 2) / 2 samples at 2x
        # at 4x: step 1 adds 2 (4 K1 - 2), step 2 adds 4 K2 - 2 plus its 2-sample alignment delay
        return HIST1 + STAGE2_HALF

    def reset(self):
        self.state.lines[:] = 0.0

    def _check(self, low, high, low_name, high_name):
        if low.ndim != 2 or high.ndim != 2:
            raise KlonError("oversampler blocks must be channels x frames arrays")
        if low.shape[0] != self.channels or high.shape[0] != self.channels:
            raise KlonError(f"oversampler set up for {self.channels} channel(s), got blocks with "
                            f"{low.shape[0]} and {high.shape[0]}")
        if high.shape[1] != self.factor * low.shape[1]:
            raise KlonError(f"{high_name} must have {self.factor} x the frames of {low_name}: "
                            f"got {high.shape[1]} and {low.shape[1]}")

    def upsample(self, x, out):
        """Interpolate x (channels x n) into out (channels x factor*n)."""
        self._check(x, out, "x", "out")
        if self.factor == 1:
            out[...] = x
        else:
            upsample(x, out, self.kernel_args)
        return out

    def downsample(self, x_high, out):
        """Decimate x_high (channels x factor*n) into out (channels x n)."""
        self._check(out, x_high, "out", "x_high")
        if self.factor == 1:
            out[...] = x_high
        else:
            downsample(x_high, out, self.kernel_args)
        return out
