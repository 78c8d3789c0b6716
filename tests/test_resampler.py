"""The streaming sample-rate converter: its response measured on what it streams, exact
streaming, and the host -> model -> host round trip the neural engine runs in."""
from fractions import Fraction
from itertools import pairwise

import numpy as np
import pytest
from numba import njit

from klon.core.errors import KlonError
from klon.dsp.resampler import (
    CHUNK,
    FINE_ROWS,
    MAX_EXACT_ROWS,
    Resampler,
    around_model,
    resample,
)

MODEL_RATE = 44_100


def split_points(n, seed, longest=1500):
    """Uneven block boundaries: empty, one-sample and longer-than-CHUNK blocks."""
    rng = np.random.default_rng(seed)
    points = [0, 0, 1, 1]
    while points[-1] < n:
        points.append(min(n, points[-1] + int(rng.choice([0, 1, rng.integers(2, longest)]))))
    return points


def band_limited(channels, n, rate, top, seed):
    """Noise with nothing above `top` Hz (zeroed bins: an exact band limit)."""
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal((channels, n)))
    spectrum[:, np.fft.rfftfreq(n, 1.0 / rate) > top] = 0.0
    return np.fft.irfft(spectrum, n)


def streamed(r, x, points):
    """x through r in the blocks between `points`, each with room for max_outputs."""
    out = []
    for lo, hi in pairwise(points):
        y = np.zeros((x.shape[0], r.max_outputs(hi - lo)))
        ready = r.ready(hi - lo)
        done = resample(x[:, lo:hi], hi - lo, y, y.shape[1], r.kernel_args)
        assert done == ready
        out.append(y[:, :done])
    return np.concatenate(out, axis=1)


def sine_response(rate_in, rate_out, freq, n_out=6000):
    """A sine at freq through the converter: the complex gain against the ideal sine delayed by
    the converter's offset, and the rms of what is left (images, aliases) after it."""
    r = Resampler(rate_in, rate_out)
    n_in = int(n_out * rate_in / rate_out) + 2 * r.taps
    x = np.sin(2 * np.pi * freq * np.arange(n_in) / rate_in)[None, :]
    y = streamed(r, x, split_points(n_in, seed=int(freq)))[0]
    k = np.arange(int((r.offset + r.taps) * rate_out / rate_in) + 1, y.size)  # past the start
    phase = 2 * np.pi * freq * (k / rate_out - float(r.offset) / rate_in)
    if freq >= rate_out / 2:  # nothing of it may pass: all of it is alias
        return 0.0, np.sqrt(np.mean(y[k] ** 2))
    basis = np.stack([np.sin(phase), np.cos(phase)], axis=1)
    (a, b), *_ = np.linalg.lstsq(basis, y[k], rcond=None)
    residual = y[k] - basis @ [a, b]
    return complex(a, b), np.sqrt(np.mean(residual ** 2))


PAIRS = [(44_100, 48_000), (48_000, 44_100), (44_100, 192_000), (192_000, 44_100),
         (22_050, 44_100), (44_100, 22_050), (44_101, 44_100), (44_100, 44_101)]


@pytest.mark.parametrize("rate_in, rate_out", PAIRS)
def test_response_meets_the_spec_on_the_streamed_output(rate_in, rate_out):
    low = min(rate_in, rate_out)
    freqs = np.concatenate([np.linspace(0.005, 0.43, 9), np.linspace(0.44, 0.499, 4)]) * low
    if rate_in > rate_out:  # these may only come out as aliases
        freqs = np.concatenate([freqs, np.linspace(0.5, 0.495 * rate_in / low, 8) * low])
    for freq in freqs:
        gain, left = sine_response(rate_in, rate_out, freq)
        if freq <= 0.43 * low:
            assert abs(20 * np.log10(abs(gain))) < 0.01, freq  # flat passband
            assert abs(np.angle(gain)) < 1e-4, freq  # linear phase: a pure delay of `offset`
        # images and aliases: a unit sine has rms 1/sqrt(2)
        assert 20 * np.log10(left * np.sqrt(2)) < -80.0, freq


@pytest.mark.parametrize("rate_in, rate_out, exact", [
    (48_000, 44_100, True), (44_100, 22_050, True), (44_100, 192_000, False),
    (44_100, 44_101, False), (44_101, 44_100, False)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_streaming_in_any_blocks_equals_one_call_bit_for_bit(rate_in, rate_out, exact, dtype):
    x = np.random.default_rng(4).standard_normal((2, 9000)).astype(dtype)
    r = Resampler(rate_in, rate_out, channels=2, offset=Fraction(37 * rate_out + 11, rate_out))
    whole = r.process(x)
    r.reset()
    pieces = streamed(r, x, split_points(x.shape[1], seed=rate_out))
    assert np.array_equal(pieces, whole)
    assert abs(whole.shape[1] - x.shape[1] * rate_out / rate_in) < r.taps * rate_out / rate_in
    assert r.state.plan[3] == (0 if exact else FINE_ROWS)  # one row per phase, or interpolated
    assert r.state.table.shape[0] <= MAX_EXACT_ROWS + 1


@njit
def through_model(x, points, y, mid, into, back):
    """What the neural bank does per block: into, the model (here the identity), back with
    limit n. Returns the fewest outputs back gave over its block's n."""
    shortfall = 0
    for b in range(points.size - 1):
        lo, hi = points[b], points[b + 1]
        m = resample(x[:, lo:hi], hi - lo, mid, mid.shape[1], into)
        done = resample(mid, m, y[:, lo:], hi - lo, back)
        shortfall = max(shortfall, hi - lo - done)
    return shortfall


@pytest.mark.parametrize("host", [22_050, 32_000, 48_000, 88_200, 96_000, 176_400, 192_000,
                                  44_101])
def test_round_trip_gives_n_per_n_delayed_by_latency(host):
    n, channels = 24_000, 2
    x = band_limited(channels, n, host, 0.4 * min(host, MODEL_RATE), seed=host)
    into, back, latency = around_model(host, MODEL_RATE, channels)
    assert isinstance(latency, int) and 0 < latency < 0.004 * host  # under 4 ms
    points = np.array(split_points(n, seed=host, longest=2 * CHUNK + 300))
    mid = np.zeros((channels, into.max_outputs(int(np.diff(points).max()))))
    y = np.full((channels, n), np.nan)
    assert through_model(x, points, y, mid, into.kernel_args, back.kernel_args) == 0
    assert error_db(x, y, latency) < -80.0
    # a sample earlier or later is far worse: the latency is the true delay
    assert min(error_db(x, y, latency - 1), error_db(x, y, latency + 1)) > -30.0


def error_db(x, y, delay, skip=2000):
    """y against x delayed by `delay`, past the start-up and the periodic noise's wrap."""
    span = x.shape[1] - 2 * skip - delay
    error = y[:, skip + delay:skip + delay + span] - x[:, skip:skip + span]
    return 20 * np.log10(np.std(error) / np.std(x))


@pytest.mark.parametrize("host", [32_000, 192_000, 44_101])
def test_latency_is_the_smallest_that_gives_n_per_n(host):
    into, back, latency = around_model(host, MODEL_RATE)
    lead = into.taps // 2
    early = Resampler(MODEL_RATE, host, offset=Fraction((latency - 1 - lead) * MODEL_RATE, host))
    x = np.zeros((1, host // 10))
    points = np.arange(x.shape[1] + 1)  # one sample at a time: every point of the period
    mid = np.zeros((1, 2))
    y = np.zeros((1, x.shape[1]))
    assert through_model(x, points, y, mid, into.kernel_args, back.kernel_args) == 0
    into.reset()
    assert through_model(x, points, y, mid, into.kernel_args, early.kernel_args) == 1


def test_equal_rates_need_no_conversion():
    assert around_model(44_100, 44_100.0, 2) == (None, None, 0)
    # a converter between equal rates is a band-limited delay: here by half a sample
    n = 8000
    x = band_limited(1, n, 48_000, 0.4 * 48_000, seed=1)
    half_later = np.fft.irfft(np.fft.rfft(x) * np.exp(-1j * np.pi * np.fft.rfftfreq(n)), n)
    y = Resampler(48_000, 48_000, offset=Fraction(1, 2)).process(x)
    assert error_db(half_later, y, 0) < -80.0


def test_bad_setups_are_refused():
    with pytest.raises(KlonError, match="unsupported sample rate 8000 Hz"):
        Resampler(8_000, 44_100)
    with pytest.raises(KlonError, match="unsupported sample rate 200000 Hz"):
        around_model(200_000, 44_100)
    with pytest.raises(KlonError, match="whole number of Hz, got 44100.5"):
        around_model(44_100.5, 44_100)
    with pytest.raises(KlonError, match="must be a number, got 'fast'"):
        Resampler("fast", 44_100)
    with pytest.raises(KlonError, match="channel count"):
        Resampler(48_000, 44_100, channels=0)
    with pytest.raises(KlonError, match="whole number of 1/44100 input samples"):
        Resampler(48_000, 44_100, offset=Fraction(1, 88_200))
    with pytest.raises(KlonError, match="2 channel"):
        Resampler(48_000, 44_100, channels=2).process(np.zeros((1, 10)))
