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
