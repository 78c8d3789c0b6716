"""The circuit-agnostic DSP blocks against scipy and against what a listener would notice."""
from itertools import pairwise

import numpy as np
import pytest
import scipy.signal
from conftest import noise

from klon.core.errors import KlonError
from klon.dsp import (
    Biquad,
    DCBlocker,
    FirstOrderFilter,
    LinearSmoother,
    Oversampler,
    bilinear,
    bilinear1,
    bilinear2,
    bilinear_constant,
    smoother_next,
    smoother_set_target,
)

FS = 48_000.0


def split_points(n, seed=0):
    """Uneven block boundaries, including one-sample and empty blocks."""
    rng = np.random.default_rng(seed)
    points = [0, 0, 1]
    while points[-1] < n:
        points.append(min(n, points[-1] + int(rng.integers(0, 300))))
    return points


# ---- bilinear -------------------------------------------------------------------------------

@pytest.mark.parametrize("b, a", [
    ([1.0], [1e-3, 1.0]),
    ([2e-4, 0.0], [1e-4, 1.0]),
    ([1.0, 2e3, 3e6], [1.0, 4e3, 5e7]),
    ([3e-9, 1e-4, 0.5, 7.0], [1e-10, 2e-6, 3e-2, 2.0]),
    ([1.0, 0.0, 0.0, 0.0, 1e16], [1.0, 2e4, 2e8, 1e12, 5e15]),
])
def test_bilinear_equals_scipy(b, a):
    bz, az = bilinear(b, a, FS)
    expected_b, expected_a = scipy.signal.bilinear(b, a, FS)
    assert az[0] == 1.0
    np.testing.assert_allclose(az, expected_a, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(bz[-expected_b.size:], expected_b, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("f0", [50.0, 1000.0, 15_000.0, 21_000.0])
def test_prewarped_bilinear_matches_analog_at_f0(f0):
    # a resonant band-pass with its peak away from f0, so the match is not a coincidence
    w = 2 * np.pi * 3000.0
    b, a = [w / 2.0, 0.0], [1.0, w / 2.0, w * w]
    bz, az = bilinear(b, a, FS, prewarp_hz=f0)
    _, analog = scipy.signal.freqs(b, a, worN=[2 * np.pi * f0])
    _, digital = scipy.signal.freqz(bz, az, worN=[f0], fs=FS)
    assert abs(digital[0] - analog[0]) < 1e-10 * abs(analog[0])
    # without prewarping the high frequencies are off (the map squeezes them)
    if f0 > 10_000:
        bz, az = bilinear(b, a, FS)
        _, plain = scipy.signal.freqz(bz, az, worN=[f0], fs=FS)
        assert abs(plain[0] - analog[0]) > 1e-3 * abs(analog[0])


def test_bilinear_constant():
    assert bilinear_constant(FS) == 2 * FS
    f0 = 1234.0
    c = bilinear_constant(FS, f0)
    assert c == pytest.approx(2 * np.pi * f0 / np.tan(np.pi * f0 / FS), rel=1e-14)
    assert 1.99 * FS < c < 2 * FS  # tan(x) > x: prewarping shrinks c slightly
    with pytest.raises(KlonError, match="half the sample rate"):
        bilinear_constant(FS, 30_000.0)
    with pytest.raises(KlonError, match="sample rate"):
        bilinear([1.0], [1.0, 1.0], 0.0)


def test_closed_forms_equal_the_generic_bilinear():
    rng = np.random.default_rng(3)
    for prewarp_hz in [None, *rng.uniform(10.0, 20_000.0, 20)]:
        c = bilinear_constant(FS, prewarp_hz or 0.0)
        # time constants near audio rates, so every term matters
        b = rng.uniform(-1, 1, 2) * [1e-4, 1.0]
        a = rng.uniform(0.1, 1, 2) * [1e-4, 1.0]
        bz, az = bilinear(b, a, FS, prewarp_hz)
        np.testing.assert_allclose(bilinear1(*b, *a, c), [bz[0], bz[1], az[1]],
                                   rtol=1e-12, atol=1e-14)
        b = rng.uniform(-1, 1, 3) * [1e-8, 1e-4, 1.0]
        a = rng.uniform(0.1, 1, 3) * [1e-8, 1e-4, 1.0]
        bz, az = bilinear(b, a, FS, prewarp_hz)
        np.testing.assert_allclose(bilinear2(*b, *a, c), [bz[0], bz[1], bz[2], az[1], az[2]],
                                   rtol=1e-11, atol=1e-14)


# ---- IIR sections ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_biquad_streams_like_one_lfilter_call(dtype):
    bz, az = scipy.signal.butter(2, 2000.0, fs=FS)
    x = noise((3, 5000)).astype(dtype)
    f = Biquad(bz, az, channels=3)
    y = np.empty_like(x)
    points = split_points(x.shape[1])
    for lo, hi in pairwise(points):
        f.process(x[:, lo:hi], out=y[:, lo:hi])
    expected = scipy.signal.lfilter(bz, az, x.astype(np.float64), axis=1)
    tolerance = 1e-12 if dtype == np.float64 else 1e-5  # float32 output rounding
    assert np.max(np.abs(y - expected)) < tolerance
    # in place, mono 1-D
    f = Biquad(bz * 3.0, az * 3.0)  # un-normalised coefficients are normalised
    z = x[1].astype(np.float64)
    assert f.process(z, out=z) is z
    assert np.max(np.abs(z - expected[1])) < 1e-12


def test_first_order_streams_like_one_lfilter_call():
    bz, az = bilinear([1e-4, 0.0], [1e-4, 1.0], FS)
    x = noise((2, 4000), seed=1)
    f = FirstOrderFilter(bz, az, channels=2)
    y = np.concatenate([f.process(x[:, lo:hi]) for lo, hi in pairwise([0, 7, 1000, 4000])],
                       axis=1)
    assert np.max(np.abs(y - scipy.signal.lfilter(bz, az, x, axis=1))) < 1e-12
    f.reset()
    assert np.max(np.abs(f.process(x) - y)) == 0.0


def test_set_coefficients_keeps_state_and_reset_clears_it():
    f = FirstOrderFilter([0.5, 0.5], [1.0, -0.5])
    f.process(np.ones(10))
    assert f.state[0, 0] != 0.0
    f.set_coefficients([1.0, 0.0], [1.0, 0.0])  # identity, keeps the stored state
    y = f.process(np.zeros(2))
    assert y[0] != 0.0 and y[1] == 0.0
    f.reset()
    assert np.all(f.process(np.zeros(3)) == 0.0)
    with pytest.raises(KlonError, match="2 numerator"):
        f.set_coefficients([1.0, 2.0, 3.0], [1.0, 0.0])
    with pytest.raises(KlonError, match="az"):
        Biquad([1.0, 0.0, 0.0], [0.0, 1.0, 0.0])


# ---- oversampling ---------------------------------------------------------------------------

def impulse_responses(factor):
    """The kernels' actual interpolation and decimation impulse responses at the high rate
    (interpolation divided by the factor, its zero-stuffing gain)."""
    n = 256
    o = Oversampler(factor)
    x = np.zeros((1, n))
    x[0, 0] = 1.0
    high = np.zeros((1, factor * n))
    o.upsample(x, high)
    up = high[0] / factor
    # decimation: y[m] = sum_k h[k] v[factor m - k]; an impulse at phase q gives h[factor m - q]
    down = np.zeros(factor * n)
    for q in range(factor):
        o.reset()
        v = np.zeros((1, factor * n))
        v[0, q] = 1.0
        y = np.zeros((1, n))
        o.downsample(v, y)
        m = np.arange(1 if q else 0, n)
        down[factor * m - q] = y[0, m]
    return up, down


@pytest.mark.parametrize("factor", [2, 4])
def test_oversampling_filters_meet_the_spec(factor):
    for h in impulse_responses(factor):
        assert np.all(np.abs(h[-factor * 64:]) == 0.0)  # finite and fully captured
        f, response = scipy.signal.freqz(h, worN=1 << 15, fs=float(factor))  # f in fs_base
        db = 20 * np.log10(np.maximum(np.abs(response), 1e-300))
        passband = db[f <= 0.43]
        assert passband.max() < 0.01 and passband.min() > -0.01
        assert db[f >= 0.57].max() < -80.0
        assert np.sum(h) == pytest.approx(1.0, abs=1e-12)  # unit gain at DC
        # linear phase: symmetric about its centre
        nz = np.flatnonzero(h)
        taps = h[nz[0]:nz[-1] + 1]
        np.testing.assert_allclose(taps, taps[::-1], atol=1e-15)


@pytest.mark.parametrize("factor", [1, 2, 4])
def test_round_trip_is_a_pure_delay_of_latency_samples(factor):
    n, channels = 20_000, 2
    x = noise((channels, n + 1000), seed=factor)
    # band-limit to 0.4 fs_base so only the passband is exercised
    x = scipy.signal.lfilter(scipy.signal.firwin(501, 0.4, fs=1.0), [1.0], x, axis=1)[:, 1000:]
    x = x.astype(np.float32).astype(np.float64)
    o = Oversampler(factor, channels)
    high = np.zeros((channels, factor * n))
    y = np.zeros((channels, n))
    points = split_points(n, seed=factor)
    for lo, hi in pairwise(points):
        o.upsample(x[:, lo:hi], high[:, factor * lo:factor * hi])
        o.downsample(high[:, factor * lo:factor * hi], y[:, lo:hi])
    latency = o.latency
    assert isinstance(latency, int)
    if factor == 1:
        assert latency == 0 and np.array_equal(y, x)
        return
    skip = 500  # the filters' start-up
    error = y[:, latency + skip:] - x[:, skip:n - latency]
    assert 20 * np.log10(np.std(error) / np.std(x)) < -80.0
    # a sample earlier or later is far worse: the latency is the true delay
    error = y[:, latency + skip + 1:] - x[:, skip:n - latency - 1]
    assert 20 * np.log10(np.std(error) / np.std(x)) > -20.0


@pytest.mark.parametrize("factor", [2, 4])
def test_dc_and_low_sine_come_through_at_unit_gain(factor):
    n = 8000
    t = np.arange(n) / FS
    for x in (np.full((1, n), 0.25), np.sin(2 * np.pi * 100.0 * t)[None, :]):
        o = Oversampler(factor)
        high = np.zeros((1, factor * n))
        y = np.zeros((1, n))
        o.upsample(x.astype(np.float32), high)  # float32 blocks are accepted
        o.downsample(high, y)
        settled = slice(1000, n)
        assert np.max(np.abs(y[:, settled] - x[:, 1000 - o.latency:n - o.latency])) < 1e-4


def test_oversampler_streaming_equals_one_call_and_reset():
    x = noise((2, 3000), seed=5)
    o = Oversampler(4, channels=2)
    whole = np.zeros((2, 12000))
    o.upsample(x, whole)
    o.reset()
    pieces = np.zeros((2, 12000))
    points = split_points(3000, seed=9)
    for lo, hi in pairwise(points):
        o.upsample(x[:, lo:hi], pieces[:, 4 * lo:4 * hi])
    np.testing.assert_allclose(pieces, whole, rtol=0, atol=1e-13)


def test_oversampler_refuses_bad_setups():
    with pytest.raises(KlonError, match="1, 2 or 4"):
        Oversampler(3)
    o = Oversampler(2, channels=2)
    with pytest.raises(KlonError, match="2 channel"):
        o.upsample(np.zeros((1, 8)), np.zeros((1, 16)))
    with pytest.raises(KlonError, match="2 x the frames"):
        o.downsample(np.zeros((2, 15)), np.zeros((2, 8)))


# ---- smoothing ------------------------------------------------------------------------------

def test_smoother_arrives_exactly_in_ramp_samples_monotonically():
    s = LinearSmoother(1000.0, ramp_seconds=0.1, initial=0.2)
    assert s.ramp_samples == 100 and not s.is_smoothing
    s.set_target(0.7)
    values = np.array([s.next() for _ in range(100)])
    assert np.all(np.diff(values) > 0) and values[0] > 0.2
    assert values[-1] == 0.7 and values[-2] < 0.7
    assert not s.is_smoothing and s.next() == 0.7
    np.testing.assert_allclose(values, 0.2 + 0.005 * np.arange(1, 101), atol=1e-15)


def test_smoother_retarget_mid_ramp_and_skip():
    state = np.zeros(4)
    smoother_set_target(state, 1.0, 10)
    for _ in range(4):
        smoother_next(state)
    assert state[0] == pytest.approx(0.4)
    smoother_set_target(state, 0.0, 8)  # back down from 0.4, a fresh full-length ramp
    values = [smoother_next(state) for _ in range(8)]
    assert np.all(np.diff(values) < 0) and values[0] == pytest.approx(0.35)
    assert values[-1] == 0.0 and state[3] == 0.0
    s = LinearSmoother(100.0, ramp_seconds=1.0, initial=-1.0)
    s.set_target(1.0)
    assert s.skip(50) == pytest.approx(0.0) and s.is_smoothing
    assert s.skip(1000) == 1.0 and not s.is_smoothing
    s.reset(0.3)
    assert s.value == 0.3 and s.target == 0.3 and not s.is_smoothing


def test_smoother_never_overshoots_awkward_steps():
    state = np.zeros(4)
    rng = np.random.default_rng(2)
    for _ in range(200):
        start, target = rng.uniform(-1e3, 1e3, 2)
        ramp = int(rng.integers(1, 5000))
        state[:] = (start, start, 0.0, 0.0)
        smoother_set_target(state, target, ramp)
        values = np.array([smoother_next(state) for _ in range(ramp)])
        sign = np.sign(target - start)
        assert np.all(sign * np.diff(values) >= 0)
        assert np.all(sign * (target - values) >= 0)
        assert values[-1] == target


# ---- DC blocker -----------------------------------------------------------------------------

def test_dc_blocker_removes_dc_and_passes_1khz():
    d = DCBlocker(FS, cutoff_hz=5.0, channels=2)
    step = np.ones((2, int(FS)), dtype=np.float32)
    y = d.process(step)
    assert y.dtype == np.float32 and np.max(np.abs(y[:, -100:])) < 1e-6
    # exactly -3 dB at the cutoff (prewarped) and flat at 1 kHz
    b0, b1, a1 = d.coefficients
    _, h = scipy.signal.freqz([b0, b1], [1.0, a1], worN=[5.0, 1000.0], fs=FS)
    assert abs(h[0]) == pytest.approx(np.sqrt(0.5), rel=1e-9)
    assert abs(20 * np.log10(abs(h[1]))) < 0.01
    # and a 1 kHz sine through the streaming filter
    d = DCBlocker(FS)
    t = np.arange(int(FS)) / FS
    y = d.process(np.sin(2 * np.pi * 1000.0 * t) + 0.5)
    level = np.sqrt(2) * np.std(y[int(FS) // 2:])
    assert abs(20 * np.log10(level)) < 0.01
    with pytest.raises(KlonError, match="cutoff"):
        DCBlocker(FS, cutoff_hz=0.0)


def test_fast_tanh_and_sigmoid_are_accurate_in_float32():
    from klon.dsp.activations import fast_tanh_array
    x = np.linspace(-12.0, 12.0, 200_001).astype(np.float32)
    y = fast_tanh_array(x)
    assert y.dtype == np.float32
    assert np.max(np.abs(y.astype(np.float64) - np.tanh(x.astype(np.float64)))) < 4e-7
    assert np.all(np.abs(y) <= 1.0)
    assert np.all(np.diff(y) >= -8e-7)  # monotonic within twice the error bound
    sigmoid = 0.5 + 0.5 * fast_tanh_array(0.5 * x)
    assert np.max(np.abs(sigmoid - 1.0 / (1.0 + np.exp(-x.astype(np.float64))))) < 4e-7
