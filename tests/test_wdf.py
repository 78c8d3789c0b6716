"""The WDF toolkit against answers worked out independently of it."""
import numpy as np
import pytest
import scipy.optimize
import scipy.signal
import scipy.special
from conftest import noise

from klon import wdf

FS = 48_000.0


def test_rc_lowpass_equals_its_bilinear_iir():
    r, c = wdf.Resistor(1e3), wdf.Capacitor(1e-6)
    tree = wdf.WDF(wdf.IdealVoltageSourceRoot("in"), wdf.Series(r, c), FS,
                   outputs=[(c, "voltage"), (r, "current")])
    x = noise(4000)
    y = tree.process(x)
    b, a = scipy.signal.bilinear([1.0], [1e-3, 1.0], FS)
    expected_v = scipy.signal.lfilter(b, a, x)
    assert np.max(np.abs(y[:, 0] - expected_v)) < 1e-9
    # the current through R is (input - capacitor voltage) / R, with the schematic's sign
    assert np.max(np.abs(y[:, 1] - (x - expected_v) / 1e3)) < 1e-12


def test_folded_maps_step_as_the_derived_map_does():
    """fold_source_root (an ideal-source root solved into the map) and sum_outputs (the outputs
    added into one row), as the circuit gain stage runs its trees: the same samples as the
    tree's own state-space path, to rounding."""
    from klon.wdf.tree import fold_source_root, folded_source_step, sum_outputs
    r1, r2 = wdf.Resistor(1e3), wdf.Resistor(4.7e3)
    c1, c2 = wdf.Capacitor(1e-7), wdf.Capacitor(2e-8)
    tree = wdf.WDF(wdf.IdealVoltageSourceRoot("in"),
                   wdf.Series(r1, wdf.Parallel(c1, wdf.Series(r2, c2))), FS,
                   outputs=[(c2, "voltage"), (r1, "current"), (r2, "current")])
    x = noise(3000)
    expected = tree.process(x)
    n = tree.n_states
    folded = np.zeros((tree.matrix.shape[0] - 1, n + 1))
    fold_source_root(tree.matrix, folded)
    summed = np.zeros((n + 2, tree.matrix.shape[1]))
    sum_outputs(tree.matrix, n, summed)
    assert np.allclose(summed[-1], tree.matrix[1 + n:].sum(axis=0), rtol=0, atol=1e-15)
    z, result = np.zeros(n + 1), np.zeros(folded.shape[0])
    got = np.zeros((len(x), 3))
    for t, v in enumerate(x):
        z[n] = v
        folded_source_step(folded, z, folded.shape[0], n, result)
        got[t] = result[n:]
    assert np.max(np.abs(got - expected)) < 1e-12 * max(1.0, np.max(np.abs(expected)))


def test_rl_highpass_in_parallel_form_equals_bilinear():
    # source with 100 ohm series resistance into an inductor: v_L = s L / (s L + R) * v_in
    ind = wdf.Inductor(10e-3)
    tree = wdf.WDF(wdf.IdealVoltageSourceRoot("in"),
                   wdf.Series(wdf.Resistor(100.0), wdf.Parallel(ind, wdf.Resistor(1e9))), FS,
                   outputs=[(ind, "voltage")])
    x = noise(4000)
    b, a = scipy.signal.bilinear([10e-3 * 1e9, 0.0], [10e-3 * (1e9 + 100.0), 100.0 * 1e9], FS)
    assert np.max(np.abs(tree.process(x)[:, 0] - scipy.signal.lfilter(b, a, x))) < 1e-9


def test_traversal_and_state_space_paths_agree_on_a_nonlinear_tree():
    def build():
        c1 = wdf.Capacitor(47e-9)
        top = wdf.Parallel(c1, wdf.Series(wdf.Resistor(2.2e3), wdf.VoltageSource("in")))
        return wdf.WDF(wdf.DiodePairRoot(2.52e-9, 1.75), top, FS, outputs=[(c1, "voltage")])

    x = 2.0 * np.sin(2 * np.pi * 200 * np.arange(3000) / FS)
    fast, slow = build().process(x), build().process(x, method="waves")
    assert np.max(np.abs(fast - slow)) < 1e-12


def test_wright_omega_matches_scipy():
    xs = np.concatenate([np.linspace(-700, 700, 20001), [-2.0, 1.0, 1e3, 1e8]])
    reference = scipy.special.wrightomega(xs).real
    ours = np.array([wdf.wright_omega(v) for v in xs])
    positive = reference > 0
    assert np.max(np.abs(ours[positive] - reference[positive]) / reference[positive]) < 1e-13


def test_the_diode_pair_solve_starts_from_omega_within_its_bound():
    """omega_start, the table the pair's solve starts from, is within 8e-7 of omega from far
    below the table to far above it (Newton then stops after one exponential, its first step
    below the 1e-6 nVt rule), and exact in the ratio below it."""
    xs = np.concatenate([np.linspace(-60, 700, 76001), np.linspace(700, 5000, 4301),
                         [-16.0, 48.0, 560.0, 4655.999]])
    error = np.array([wdf.omega_start(x) - wdf.wright_omega(x) for x in xs])
    assert np.max(np.abs(error[xs < 4656])) < 8e-7
    assert np.max(np.abs(error[xs < -16]) / np.array([wdf.wright_omega(x) for x in xs[xs < -16]])) \
        < 1e-6


@pytest.mark.parametrize("is_, n", [(2e-7, 1.3), (19.4e-9, 0.733), (15e-6, 1.0)])
def test_diode_pair_root_is_the_exact_pair_solution(is_, n):
    vt = n * 0.025865
    for r in (10.0, 1e3, 1e5):
        for a in np.linspace(-10, 10, 801):
            if a == 0:
                continue
            v = wdf.diode_pair_voltage(a, r, is_, vt)
            def current(u, a=a, r=r):
                return (a - u) / r - 2 * is_ * np.sinh(u / vt)

            expected = scipy.optimize.brentq(current, min(0, a), max(0, a), xtol=1e-15,
                                             rtol=1e-15)
            assert abs(v - expected) < 1e-12 * max(1.0, abs(expected))


def test_diode_clipper_equals_a_newton_solve_of_the_same_circuit():
    # source -- R -- node -- (C || D2 || D3) -- ground, both discretised with the trapezoidal rule
    r_val, c_val, is_, vt = 1e3, 10e-9, 2e-7, 1.3 * 0.025865
    cap = wdf.Capacitor(c_val)
    top = wdf.Parallel(cap, wdf.Series(wdf.Resistor(r_val), wdf.VoltageSource("in")))
    tree = wdf.WDF(wdf.DiodePairRoot(is_, 1.3), top, FS, outputs=[(cap, "voltage")])
    x = 3.0 * np.sin(2 * np.pi * 500 * np.arange(2000) / FS) + noise(2000, scale=0.1)
    y = tree.process(x)[:, 0]

    g_c = 2 * c_val * FS
    v_prev, i_prev = 0.0, 0.0
    expected = np.empty_like(x)
    for n, vin in enumerate(x):
        history = g_c * v_prev + i_prev  # capacitor current is g_c v - history

        def kcl(v, vin=vin, history=history):
            return (vin - v) / r_val - (g_c * v - history) - 2 * is_ * np.sinh(v / vt)

        v = scipy.optimize.brentq(kcl, -10, 10, xtol=1e-15)
        expected[n] = v
        v_prev, i_prev = v, g_c * v - history
    assert np.max(np.abs(y - expected)) < 1e-9


def test_a_pot_moved_at_run_time_acts_like_a_tree_built_with_that_value():
    def build(resistance):
        pot = wdf.Resistor(resistance)
        c = wdf.Capacitor(100e-9)
        return wdf.WDF(wdf.IdealVoltageSourceRoot("in"), wdf.Series(pot, c), FS,
                       outputs=[(c, "voltage")]), pot

    x = noise(2000)
    moving, pot = build(10e3)
    moving.process(x[:1000])
    moving.set_resistance(pot, 2e3)
    fresh, _ = build(2e3)
    fresh.state[:] = moving.state  # capacitor waves do not depend on the pot's value
    assert np.allclose(moving.process(x[1000:]), fresh.process(x[1000:]), atol=1e-13)
    # and the filter really changed: the cutoff moved up, more signal gets through
    slow, _ = build(10e3)
    slow.state[:] = 0
    assert np.std(fresh.process(x)) > 1.5 * np.std(slow.process(x))


def test_bad_descriptions_are_refused():
    with pytest.raises(ValueError):
        wdf.Resistor(0.0)
    with pytest.raises(ValueError):
        wdf.Series(wdf.Resistor(1.0))
    r = wdf.Resistor(1.0)
    with pytest.raises(ValueError):
        wdf.WDF(wdf.ShortRoot(), wdf.Series(r, r), FS)


DIODES = [(2e-7, 1.3), (19.4e-9, 0.733)]  # the 1N34A and the MBRB2545CT


def pair_wave(a, r, is_, vt):
    """The wave the pair reflects and its antiderivative (klon.wdf.omega's)."""
    v = wdf.diode_pair_voltage(a, r, is_, vt)
    return 2 * v - a, wdf.diode_pair_antiderivative(a, v, r, is_, vt)


@pytest.mark.parametrize("is_, n", DIODES)
def test_the_diode_pair_antiderivative_differentiates_to_the_reflected_wave(is_, n):
    vt = n * 0.025865
    for r in (10.0, 237.0, 950.0, 5e3, 1e5):
        for a in np.concatenate([np.linspace(-40, 40, 401), np.linspace(-1, 1, 201)]):
            h = 1e-4 * max(1.0, abs(a))
            slope = (pair_wave(a + h, r, is_, vt)[1] - pair_wave(a - h, r, is_, vt)[1]) / (2 * h)
            assert abs(slope - pair_wave(a, r, is_, vt)[0]) < 1e-6 * max(1.0, abs(a)), (r, a)


@pytest.mark.parametrize("is_, n", DIODES)
def test_the_one_solve_reflection_and_antiderivative_match_the_formula(is_, n):
    """diode_pair_reflection carries the solver's last exponential to the final v instead of
    taking a cosh of its own: the same numbers to rounding."""
    vt = n * 0.025865
    for r in (10.0, 950.0, 1e5):
        for a in np.concatenate([np.linspace(-40, 40, 801), [0.0, 1e-9, -1e-3]]):
            b, big = wdf.diode_pair_reflection(a, wdf.pair_offset(r, is_, vt), r, is_, vt)
            wave, expected = pair_wave(a, r, is_, vt)
            assert b == wave
            assert abs(big - expected) <= 1e-15 * max(1.0, a * a)


@pytest.mark.parametrize("is_, n", DIODES)
def test_the_diode_pair_antiderivative_barely_feels_an_error_in_v(is_, n):
    """Written so that its derivative in v vanishes at the solution: a solve's error e moves it
    by about (1 + R i') e^2, so a float solve (e near 1e-7 V) costs a few 1e-12 at most."""
    vt, r = n * 0.025865, 950.0
    for a in (-7.0, -0.3, 0.05, 1.0, 7.0):
        v = wdf.diode_pair_voltage(a, r, is_, vt)
        exact = wdf.diode_pair_antiderivative(a, v, r, is_, vt)
        for e in (-1e-7, 1e-7):
            assert abs(wdf.diode_pair_antiderivative(a, v + e, r, is_, vt) - exact) < 1e-11


def test_the_antialiased_pair_is_the_mean_reflection_plus_half_the_plain_change():
    """From memory at a0, a step to a1 gives f's mean over [a0, a1] (composite Gauss-Legendre
    on the exact pair) plus (f(a1) - f(a0)) / 2: the plain f(a1) for an affine f, and the plain
    f(a1) itself for a step below ADAA_THRESHOLD."""
    is_, vt, r = 2e-7, 1.3 * 0.025865, 950.0
    root = np.array([is_, vt])
    nodes, weights = np.polynomial.legendre.leggauss(8)
    memory = np.zeros(wdf.ADAA_MEMORY)
    for a0, a1 in [(0.0, 0.3), (0.3, 0.9), (-0.2, 0.4), (2.0, 5.0), (5.0, 4.9), (-6.0, 6.0),
                   (1.0, 1.0 + 1e-3)]:
        wdf.set_antialiasing_memory(memory, a0, root, r)
        edges = np.linspace(a0, a1, 41)  # composite: the knees are sharp
        points = (0.5 * (edges[:-1] + edges[1:])[:, None]
                  + 0.5 * np.diff(edges)[:, None] * nodes).ravel()
        mean = np.dot(np.tile(weights, 40), [pair_wave(x, r, is_, vt)[0] for x in points]) / 80
        expected = mean + 0.5 * (pair_wave(a1, r, is_, vt)[0] - pair_wave(a0, r, is_, vt)[0])
        assert abs(wdf.antialiased_diode_pair(a1, memory, root, r) - expected) < 1e-9
        assert memory[0] == a1
    for step in (0.0, 0.5 * wdf.ADAA_THRESHOLD):
        wdf.set_antialiasing_memory(memory, 0.8, root, r)
        assert wdf.antialiased_diode_pair(0.8 + step, memory, root, r) == \
            pair_wave(0.8 + step, r, is_, vt)[0]
    # small waves: the pair is a resistor but for a cubic term, and the plain reflection passes
    # (the correction, about the cubic's coefficient times the step cubed, is below 1e-7 of
    # the 0.1 mV waves)
    wdf.set_antialiasing_memory(memory, 0.0, root, r)
    for a in 1e-4 * np.sin(np.arange(50)):
        plain = pair_wave(a, r, is_, vt)[0]
        assert abs(wdf.antialiased_diode_pair(a, memory, root, r) - plain) < 1e-11
