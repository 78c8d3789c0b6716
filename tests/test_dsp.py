"""The circuit-agnostic DSP blocks against scipy and against what a listener would notice."""
from itertools import pairwise

import numpy as np
import pytest
import scipy.signal
from conftest import noise

from klon.core.errors import KlonError
from klon.core.glide import smoother_next, smoother_set_target, smoother_skip
from klon.dsp.bilinear import bilinear, bilinear1, bilinear2, bilinear_constant
from klon.dsp.integration import WIDEBAND_WEIGHTS, relative_response, wideband_weights
from klon.dsp.oversampling import PASSBAND_EDGE, STAGE1_HALF, STAGE2_HALF, Oversampler, stage_taps

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
    state = np.array([0.2, 0.2, 0.0, 0.0])  # at rest at 0.2
    smoother_set_target(state, 0.7, 100)
    values = np.array([smoother_next(state) for _ in range(100)])
    assert np.all(np.diff(values) > 0) and values[0] > 0.2
    assert values[-1] == 0.7 and values[-2] < 0.7
    assert state[3] == 0.0 and smoother_next(state) == 0.7
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
    state[:] = (-1.0, -1.0, 0.0, 0.0)
    smoother_set_target(state, 1.0, 100)
    assert smoother_skip(state, 50) == pytest.approx(0.0) and state[3] > 0.0
    assert smoother_skip(state, 1000) == 1.0 and state[3] == 0.0
    smoother_set_target(state, 0.3, 0)  # no ramp: a jump
    assert state[0] == 0.3 and state[1] == 0.3 and state[3] == 0.0


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


def test_the_stored_half_band_branches_are_their_remez_design():
    """The oversampler's taps are stored (building a pedal imports no scipy.signal); they are
    the equiripple designs their comments name, and symmetric, so the filters are linear
    phase."""
    designs = [(STAGE1_HALF, PASSBAND_EDGE / 2.0), (STAGE2_HALF, (1.0 - PASSBAND_EDGE) / 4.0)]
    for stored, (half_taps, edge) in zip(stage_taps(4), designs, strict=True):
        g = scipy.signal.remez(2 * half_taps, [0.0, 2.0 * edge], [1.0], fs=1.0)
        np.testing.assert_allclose(stored, g / g.sum(), rtol=0, atol=1e-12)
        assert np.array_equal(stored, stored[::-1]) and not stored.flags.writeable


def test_the_stored_wideband_weights_are_their_design():
    """Stored so the C export's literals do not depend on the linear algebra's last bits: the
    design solved again here moves by up to 1.4e-14 between machines (OpenBLAS with AVX-512 or
    without), so it is held to 1e-12, four orders below anything the rule's response shows."""
    np.testing.assert_allclose(WIDEBAND_WEIGHTS, wideband_weights(), rtol=0, atol=1e-12)
    assert not WIDEBAND_WEIGHTS.flags.writeable


@pytest.mark.parametrize("rate", [88_200, 96_000, 128_000, 176_400, 384_000])
def test_the_wideband_rule_integrates_exactly_to_16_khz(rate):
    """Within 0.09 dB and 0.006 rad of the exact integrator from 20 Hz to 16 kHz at every
    oversampled rate the circuit runs at (the trapezoidal rule: -1.0 dB at 16 kHz at 88.2 kHz),
    and exact for currents up to degree 2 in time."""
    f = np.linspace(20, 16_000, 400)
    r = relative_response(WIDEBAND_WEIGHTS, f, rate)
    assert np.max(np.abs(20 * np.log10(np.abs(r)))) < 0.09
    assert np.max(np.abs(np.angle(r))) < 0.006
    trapezoidal = relative_response([0.5, 0.5], 16_000, 88_200)
    assert 20 * np.log10(abs(trapezoidal)) < -1.0
    k = np.arange(WIDEBAND_WEIGHTS.size)
    for degree in range(3):  # v_n - v_(n-1) over T/C = the integral of t^degree over [-1, 0]
        assert np.sum(WIDEBAND_WEIGHTS * (-k) ** degree) == pytest.approx((-1) ** degree
                                                                           / (degree + 1))
