"""The SPICE referee: its netlists and runner against exact answers worked out without SPICE.

The linear stages are compared with their analytic transfer functions driven by exactly the
piecewise-linear waveform SPICE is given (scipy's lsim interpolates its input linearly, as a
PWL source does), sampled at the same instants. Agreement to an ESR of 1e-6 (measured: 1e-11 to
1e-8) shows the netlist wiring, the pot mapping and the timing (no delay, no off-by-one) at once.
"""
import subprocess

import numpy as np
import pytest
import scipy.signal
from conftest import noise

from klon.core.errors import KlonError
from klon.core.metrics import esr
from klon.spice import NETLIST_STAGES, band_limited_input, netlist, runner, simulate, write_netlists

FS = 44_100.0
PREROLL = 64
R1, R2, C1 = 10e3, 1e6, 100e-9
R21, R22, R23, R24, C14 = 1.8e3, 100e3, 4.7e3, 100e3, 3.9e-9
R25, R28, C15 = 560.0, 100e3, 4.7e-6


def noise_input(scale=0.1, seed=0):
    """0.05 s of full-band noise: the hardest input for timing, since every sample matters."""
    return noise(int(0.05 * FS), scale, seed)


def analytic_response(num, den, x):
    """H(s) driven by the same PWL corners SPICE gets, read at the sample instants."""
    times, corners = band_limited_input(x, FS, preroll_samples=PREROLL)
    _, y, _ = scipy.signal.lsim((num, den), corners, times)
    instants = (PREROLL + np.arange(x.size)) / FS
    return np.interp(instants, times, y)


def pot(total, position):
    return max(total * position, 1.0), max(total * (1.0 - position), 1.0)


def test_input_buffer_matches_its_highpass():
    x = noise_input()
    y = simulate("input_buffer", x, FS, preroll_samples=PREROLL)
    expected = analytic_response([C1 * R2, 0.0], [C1 * (R1 + R2), 1.0], x)
    assert y.shape == x.shape and y.dtype == np.float64
    assert esr(expected, y) < 1e-6


@pytest.mark.parametrize("treble", [0.0, 0.5, 1.0])
def test_tone_stage_matches_its_shelf(treble):
    x = noise_input(seed=1)
    y = simulate("tone", x, FS, treble=treble, preroll_samples=PREROLL)
    wiper_to_b, a_to_wiper = pot(10e3, treble)
    g1, g2, g3, g4 = 1 / R22, 1 / (R21 + a_to_wiper), 1 / (R23 + wiper_to_b), 1 / R24
    num = [-C14 * (g1 + g2), -g1 * (g2 + g3)]
    den = [C14 * (g3 + g4), g4 * (g2 + g3)]
    assert esr(analytic_response(num, den, x), y) < 1e-6


@pytest.mark.parametrize("level", [0.2, 1.0])
def test_output_stage_matches_its_divider(level):
    x = noise_input(seed=2)
    y = simulate("output_stage", x, FS, level=level, preroll_samples=PREROLL)
    # C15 in series with Ra = R25 + upper part of the pot, into Zb = lower part || R28:
    # H = Zb / (Ra + Zb + 1/(s C15)) = s C15 Zb / (s C15 (Ra + Zb) + 1)
    lower, upper = pot(10e3, level)
    ra, zb = R25 + upper, lower * R28 / (lower + R28)
    expected = analytic_response([C15 * zb, 0.0], [C15 * (ra + zb), 1.0], x)
    assert esr(expected, y) < 1e-6


def test_opamp_clamps_hard_and_recovers_at_once():
    # The buffer's input network draws nothing from the op-amp, so an ideal op-amp with a hard
    # clamp at 1.5 V inside its 0 / 9 V rails gives exactly the linear response clipped to
    # +-3 V about 4.5 V. Any wind-up would show as a late return from the clamp.
    t = np.arange(int(0.05 * FS)) / FS
    x = 5.0 * np.sin(2 * np.pi * 300 * t) + noise_input(scale=0.2)
    y = simulate("input_buffer", x, FS, preroll_samples=PREROLL)
    linear = analytic_response([C1 * R2, 0.0], [C1 * (R1 + R2), 1.0], x)
    assert np.mean(np.abs(linear) > 3.0) > 0.4  # it really spends time clamped
    assert np.max(y) == pytest.approx(3.0, abs=1e-9) and np.min(y) == pytest.approx(-3.0, abs=1e-9)
    assert esr(np.clip(linear, -3.0, 3.0), y) < 1e-9


def test_spice_is_converged_in_its_step():
    # halving the maximum time step must not move the clipping gain stage
    t = np.arange(int(0.05 * FS)) / FS
    x = 0.3 * np.sin(2 * np.pi * 200 * t) + noise_input(scale=0.05, seed=3)
    coarse = simulate("gain_stage", x, FS, gain=1.0)
    fine = simulate("gain_stage", x, FS, gain=1.0, max_step=1.0 / (FS * 16))
    assert esr(fine, coarse) < 1e-6


def test_gain_stage_at_gain_zero_is_linear_and_opamp_independent_at_small_signal():
    t = np.arange(int(0.05 * FS)) / FS
    x = 0.01 * np.sin(2 * np.pi * 440 * t)
    y = simulate("gain_stage", x, FS, gain=0.0)
    assert np.all(np.isfinite(y))
    # with the amp stage's input tied to 4.5 V the diodes see nothing: doubling the input
    # doubles the output
    assert esr(2 * y, simulate("gain_stage", 2 * x, FS, gain=0.0)) < 1e-8
    # the clean paths pass the 10 mV at roughly unity gain
    steady = y[len(y) // 2:]
    assert 0.003 < np.max(np.abs(steady)) < 0.05
    # a 3 MHz op-amp changes little at 440 Hz
    assert esr(y, simulate("gain_stage", x, FS, gain=0.0, opamp="tl072")) < 1e-4


def test_gain_stage_at_full_gain_clips():
    t = np.arange(int(0.05 * FS)) / FS
    sine = np.sin(2 * np.pi * 200 * t)
    quiet = simulate("gain_stage", 0.03 * sine, FS, gain=1.0)
    loud = simulate("gain_stage", 0.3 * sine, FS, gain=1.0)
    half = len(t) // 2
    growth = np.max(np.abs(loud[half:])) / np.max(np.abs(quiet[half:]))
    assert 1.0 < growth < 3.0


def test_diode_capacitance_switch_changes_only_the_card():
    with_c = netlist("gain_stage", diode="mbrb2545ct")
    without = netlist("gain_stage", diode="mbrb2545ct", diode_capacitance=False)
    assert "CJO=2.05n)" in with_c and "CJO=0)" in without
    changed = [a for a, b in zip(with_c.splitlines(), without.splitlines(), strict=True) if a != b]
    assert len(changed) == 2 and changed[1].startswith(".model dclip")  # title and card


def test_pedal_equals_its_stages_in_a_chain_at_small_signal():
    # At low gain and 10 mV everything is close to linear and far below 20 kHz, so running the
    # stages one after another through sampled signals must give what the one-piece netlist
    # gives. (Measured 5e-9; scipy's default upsampling filter alone would cost 5e-6.)
    t = np.arange(int(0.05 * FS)) / FS
    x = 0.01 * np.sin(2 * np.pi * 440 * t) + 0.005 * np.sin(2 * np.pi * 1500 * t)
    knobs = dict(gain=0.1, treble=0.7, level=0.8)
    chained = x
    for stage in ("input_buffer", "gain_stage", "tone", "output_stage"):
        chained = simulate(stage, chained, FS, **knobs)
    whole = simulate("pedal", x, FS, **knobs)
    assert esr(chained, whole) < 1e-7


def test_netlists_are_readable_and_shipped_copies_are_current(tmp_path):
    paths = write_netlists(tmp_path)
    assert [p.stem for p in paths] == list(NETLIST_STAGES)
    for path in paths:
        assert path.read_text().startswith(netlist(path.stem))
    text = netlist("gain_stage", gain=1.0)
    for part in ("C16 n20 0 1u", "R19 n20 sum 15k", "R16 n13 sum 47k", "R17 wb sum 27k",
                 "C12 sum n18 27n", "R18 n18 wb 12k", "R20 sum vout 392k", "C13 sum vout 820p",
                 "RgainA_top inp vb 100000", "RgainA_bot vb na2 1", "Rload vout 0 1meg"):
        assert part in text
    from importlib.resources import files
    shipped = files("klon.spice") / "netlists"
    for stage in NETLIST_STAGES:
        assert (shipped / f"{stage}.cir").read_text() == (tmp_path / f"{stage}.cir").read_text()


def test_netlist_text_runs_by_hand_and_gives_the_tone_response(tmp_path):
    # what a user gets from netlist() is a working deck: an AC sweep of it matches H(s)
    deck = tmp_path / "tone.cir"
    deck.write_text(netlist("tone", treble=1.0) + "\n".join([
        ".control", "ac dec 1 100 10k", "wrdata tone.txt vr(oin) vi(oin)", "quit 0", ".endc",
        ".end", ""]))
    subprocess.run(["ngspice", "-b", str(deck)], cwd=tmp_path, capture_output=True, check=True)
    freq, re, _, im = np.loadtxt(tmp_path / "tone.txt").T
    g1, g2, g3, g4 = 1 / R22, 1 / (R21 + 1.0), 1 / (R23 + 10e3), 1 / R24
    _, h = scipy.signal.freqs([-C14 * (g1 + g2), -g1 * (g2 + g3)],
                              [C14 * (g3 + g4), g4 * (g2 + g3)], 2 * np.pi * freq)
    assert np.allclose(re + 1j * im, h, rtol=1e-4)


def test_user_errors_raise_klon_error():
    x = np.zeros(100)
    with pytest.raises(KlonError, match="unknown stage"):
        simulate("fuzz", x, FS)
    with pytest.raises(KlonError, match="unknown diode"):
        simulate("gain_stage", x, FS, diode="1n4148")
    with pytest.raises(KlonError, match="unknown op-amp"):
        simulate("tone", x, FS, opamp="lm741")
    with pytest.raises(KlonError, match="gain"):
        netlist("gain_stage", gain=1.5)
    with pytest.raises(KlonError, match="1-D"):
        simulate("tone", np.zeros((2, 10)), FS)
    with pytest.raises(KlonError, match="sample rate"):
        simulate("tone", x, -1.0)


def test_missing_or_failing_ngspice_is_reported(monkeypatch):
    x = np.zeros(64)
    monkeypatch.setattr(runner, "NGSPICE", "no-such-ngspice-binary")
    with pytest.raises(KlonError, match="install the Debian package 'ngspice'"):
        simulate("tone", x, FS)
    monkeypatch.undo()
    # a reference to a subcircuit that does not exist makes ngspice give up
    monkeypatch.setattr(runner, "OPTIONS", runner.OPTIONS + "\nXbroken a b no_such_subckt")
    with pytest.raises(KlonError, match="ngspice failed"):
        simulate("tone", x, FS)
