"""Streaming band-limited sample-rate conversion between two whole rates (Kaiser-windowed sinc).

Output k of a converter from f_in to f_out is the band-limited input at input position
p(k) = k f_in / f_out - offset (input samples; inputs before sample 0 are silence). Its taps
sit at the inputs floor(p) - taps/2 + 1 .. floor(p) + taps/2, weighted by a windowed sinc cut at
CUTOFF of the lower rate: passband flat within 0.003 dB to 0.43, stopband below -82 dB from
0.5 of the lower rate (both measured on streamed sines, tests/test_resampler.py), linear phase
(the kernel is even about p). The converter delays a signal by `offset` input samples; the
smallest offset at which output k needs no input after floor(k f_in / f_out) is taps / 2.

Positions are whole numbers: p(k) = (k f_in - offset f_out) / f_out is stepped as a quotient and
remainder over f_out / gcd(f_in, f_out), exactly, for any length of stream. Where that many
phases fit a table of MAX_EXACT_ROWS rows (48 kHz against 44.1: 147 and 160), each phase has
its row of taps; otherwise (192 kHz: 640, 44101 Hz: 44101) the kernel is tabled at FINE_ROWS + 1
phases over one input sample and each output interpolates linearly between two rows.

`around_model` pairs two converters around a model that runs at its own rate (Carson et al.:
resampling around a recurrent model is the most robust way to run it at another rate): n host
samples in give exactly n out, `latency` host samples later (1.7 ms from 44.1 kHz up to any
rate, 3.4 ms at 22.05 kHz).

Each channel keeps its newest inputs at the front of a work array; a block is walked through in
chunks of up to CHUNK inputs appended after them, and every output whose taps have all arrived
is written, up to the caller's limit. Nothing is allocated per call.
"""
from fractions import Fraction
from math import ceil, gcd
from typing import NamedTuple

import numpy as np
from numba import njit

from klon.core.errors import KlonError
from klon.core.kernel_state import plain
from klon.core.processor import MAX_CHANNELS, check_sample_rate

HALF_SPAN = 37  # taps each side of an output, in samples of the lower rate
BETA = 8.2  # Kaiser window shape: the stopband depth against the transition width
CUTOFF = 0.464  # of the lower rate: the middle of the 0.43 .. 0.5 transition
# More distinct phases than MAX_EXACT_ROWS: interpolate the kernel tabled at FINE_ROWS steps
# per input sample. Measured on streamed sines, 128 steps already meet the spec as well as exact
# phases do; 256 keep a margin, and bound the C export's tables (sized for any rate) at 257 rows.
MAX_EXACT_ROWS = 256
FINE_ROWS = 256
HOLD = 8  # history kept beyond the taps: inputs that may arrive after an output held by `limit`
CHUNK = 512  # inputs per inner pass; longer blocks are walked through in chunks


def check_rate(rate) -> int:
    """A sample rate as an int, or a KlonError unless it is a whole number of Hz in range."""
    value = check_sample_rate(rate)
    if value != int(value):
        raise KlonError(f"sample rate must be a whole number of Hz, got {value:g}")
    return int(value)


def bessel_i0(x: np.ndarray) -> np.ndarray:
    """The modified Bessel function I0 by its power series (the C export sums the same)."""
    x = np.asarray(x, dtype=np.float64)
    total = np.ones_like(x)
    term = np.ones_like(x)
    for k in range(1, 64):
        term = term * (x / (2 * k)) ** 2
        total = total + term
    return total


def half_taps(rate_in: int, rate_out: int) -> int:
    """Taps each side of an output, in input samples: HALF_SPAN samples of the lower rate."""
    return ceil(HALF_SPAN * rate_in / min(rate_in, rate_out))


def kernel_rows(rate_in: int, rate_out: int, phases: np.ndarray) -> np.ndarray:
    """One row of taps per phase (fraction of an input sample past floor(p)), each summing to 1
    so DC passes at exactly unit gain: row[m] = h(phase + taps/2 - 1 - m)."""
    half = half_taps(rate_in, rate_out)
    scale = min(rate_in, rate_out) / rate_in  # input samples -> lower-rate samples
    t = phases[:, None] + (half - 1 - np.arange(2 * half))[None, :]
    x = t / half
    inside = np.abs(x) < 1.0  # the edge itself is zero, so the row at phase 0 stays symmetric
    window = bessel_i0(BETA * np.sqrt(np.where(inside, 1.0 - x * x, 0.0))) / bessel_i0(BETA)
    rows = np.where(inside, np.sinc(2.0 * CUTOFF * scale * t) * window, 0.0)
    return rows / rows.sum(axis=1, keepdims=True)


class ResamplerState(NamedTuple):
    """What `resample` reads and writes."""

    table: np.ndarray  # phases x taps, float32 (half the cache of float64; the C's table)
    plan: np.ndarray  # int64 [step_q, step_r, denominator, fine rows (0: one row per phase)]
    fine: np.ndarray  # float64 [phase shift, fine rows / denominator]: the fine table's position
    clock: np.ndarray  # int64 [q, r]: the next output's position from the next input to come
    work: np.ndarray  # channels x (history + CHUNK)


@njit(cache=True, fastmath={"reassoc", "contract"})
def _dot(row, w, first):
    """sum row[m] w[first + m]: reassociated so it vectorises (no NaN test to hide); the slice
    taken first, so no index in the loop can be negative (a wrap-around test per tap)."""
    taps = w[first:first + row.shape[0]]
    acc = 0.0
    for m in range(row.shape[0]):
        acc += row[m] * taps[m]
    return acc


@njit(cache=True, fastmath={"reassoc", "contract"})
def _dot2(row0, row1, w, first, frac):
    """The dot product with the row interpolated between row0 and row1 at frac (one sum:
    half as dear, measured, as a sum for each row)."""
    taps = w[first:first + row0.shape[0]]
    acc = 0.0
    for m in range(row0.shape[0]):
        acc += (row0[m] + frac * (row1[m] - row0[m])) * taps[m]
    return acc


@njit(cache=True)
def resample(x, n, y, limit, s):
    """Take x[:, :n]; write into y every output whose taps have all arrived, at most `limit`;
    return how many. s: the ResamplerState (or it as a plain tuple)."""
    s = ResamplerState(*s)
    table, work = s.table, s.work
    step_q, step_r, den, fine_rows = s.plan[0], s.plan[1], s.plan[2], s.plan[3]
    shift, fine_scale = s.fine[0], s.fine[1]
    taps = table.shape[1]
    half = taps // 2
    hist = taps + HOLD
    chunk = work.shape[1] - hist
    q, r = s.clock[0], s.clock[1]
    emitted = 0
    start = 0
    while True:
        count = min(chunk, n - start)
        for ch in range(work.shape[0]):
            for t in range(count):
                work[ch, hist + t] = x[ch, start + t]
        while emitted < limit and q + half < count:
            first = hist + q - half + 1
            if first < 0:  # wholly before the first input (an offset longer than the history)
                for ch in range(work.shape[0]):
                    y[ch, emitted] = 0.0
            elif fine_rows == 0:
                row = table[r]
                for ch in range(work.shape[0]):
                    y[ch, emitted] = _dot(row, work[ch], first)
            else:
                place = (r + shift) * fine_scale
                i = min(int(place), fine_rows - 1)
                frac = place - i
                for ch in range(work.shape[0]):
                    y[ch, emitted] = _dot2(table[i], table[i + 1], work[ch], first, frac)
            emitted += 1
            q += step_q
            r += step_r
            if r >= den:
                r -= den
                q += 1
        for ch in range(work.shape[0]):
            for j in range(hist):
                work[ch, j] = work[ch, count + j]
        q -= count
        start += count
        if start >= n:
            break
    s.clock[0] = q
    s.clock[1] = r
    return emitted


class Resampler:
    """f_in -> f_out for `channels` channels, streamed block by block; `offset` (input samples,
    a whole number of 1/f_out; default taps/2) is its delay. resample(x, n, y, limit,
    kernel_args) is the compiled call; `process` the convenience.

    An output held back by `limit` is written by the next call, provided at most HOLD inputs
    arrived after its last tap (around_model's `back`, limited to n, only holds back outputs
    that end at the newest input)."""

    def __init__(self, rate_in, rate_out, channels=1, offset=None):
        self.rate_in, self.rate_out = check_rate(rate_in), check_rate(rate_out)
        if not 1 <= int(channels) <= MAX_CHANNELS:
            raise KlonError(f"channel count must be 1..{MAX_CHANNELS}, got {channels}")
        self.channels = int(channels)
        half = half_taps(self.rate_in, self.rate_out)
        self.taps = 2 * half
        self.offset = Fraction(half if offset is None else offset)
        delay = self.offset * self.rate_out  # the offset in 1/f_out steps of the numerator
        if delay.denominator != 1:
            raise KlonError(f"resampler offset must be a whole number of 1/{self.rate_out} input "
                            f"samples, got {offset}")
        g = gcd(self.rate_in, self.rate_out)
        den = self.rate_out // g
        # p(k) = (k M - lag + shift) / den with M = f_in / g, lag = ceil(delay / g) and shift
        # = lag - delay / g in [0, 1): (q, r) = divmod(k M - lag, den) steps exactly, and the
        # phase past q is (r + shift) / den
        lag = -(-int(delay) // g)
        shift = (lag * g - int(delay)) / g
        self._start = divmod(-lag, den)
        step = divmod(self.rate_in // g, den)
        if den <= MAX_EXACT_ROWS:
            table = kernel_rows(self.rate_in, self.rate_out, (np.arange(den) + shift) / den)
            plan, fine = (*step, den, 0), (0.0, 0.0)
        else:
            table = kernel_rows(self.rate_in, self.rate_out, np.arange(FINE_ROWS + 1) / FINE_ROWS)
            plan, fine = (*step, den, FINE_ROWS), (shift, FINE_ROWS / den)
        self.state = ResamplerState(
            table.astype(np.float32), np.array(plan, dtype=np.int64), np.array(fine),
            np.array(self._start, dtype=np.int64),
            np.zeros((self.channels, self.taps + HOLD + CHUNK)))
        self.kernel_args = plain(self.state)
        self._early = self.ready(0)  # an offset beyond taps/2 gives outputs before any input

    def reset(self):
        self.state.clock[:] = self._start
        self.state.work[:] = 0.0

    def max_outputs(self, n: int) -> int:
        """The most outputs a block of n inputs yields, when none was held back by `limit`."""
        return -(-n * self.rate_out // self.rate_in) + self._early

    def ready(self, n: int) -> int:
        """How many outputs are written once n more inputs have arrived, held ones included."""
        step_q, step_r, den, _ = self.state.plan
        q, r = self.state.clock
        return max(0, -(-((n - self.taps // 2 - q) * den - r) // (step_q * den + step_r)))

    def process(self, x: np.ndarray) -> np.ndarray:
        """x (channels x n) in, every output ready after it out (channels x m, float64)."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != self.channels:
            raise KlonError(f"resampler set up for {self.channels} channel(s) x frames, got an "
                            f"array of shape {x.shape}")
        y = np.zeros((self.channels, self.ready(x.shape[1])))
        done = resample(x, x.shape[1], y, y.shape[1], self.kernel_args)
        return y[:, :done]


def around_model(host_rate, model_rate, channels=1):
    """(into, back, latency): host -> model and model -> host converters such that a block of n
    host samples through `into`, a causal per-sample model and `back` (limit n) comes out as
    exactly n host samples, delayed by `latency` (whole host samples). (None, None, 0) at
    equal rates: no conversion."""
    host, model = check_rate(host_rate), check_rate(model_rate)
    if host == model:
        return None, None, 0
    into = Resampler(host, model, channels)  # model sample i needs host samples up to
    lead = into.taps // 2  # floor(i host / model), and lags the host signal by `lead`
    half = half_taps(model, host)
    # After T host samples, into has given m(T) = ceil(T model / host) model samples and back
    # can write its outputs k < (m(T) - half) host / model + latency - lead: the smallest
    # latency that makes this at least T for every T (periodic in T with period host / g).
    t = np.arange(host // gcd(host, model) + 1, dtype=np.int64)
    m = -(-t * model // host)
    latency = lead + int(np.max(t - -(-(m - half) * host // model)))
    back = Resampler(model, host, channels, offset=Fraction((latency - lead) * model, host))
    return into, back, latency
