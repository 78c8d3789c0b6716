"""The circuit pedal as a user streams and tweaks it."""
import numpy as np
import pytest
from conftest import sine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from klon import Centaur, GainStage, KlonError
from klon.dsp.oversampling import PASSBAND_EDGE
from klon.dsp.synth import guitar_riff
from klon.pedal.gain_stage import antialiased_clamp, clamp_excess_antiderivative, mean_clamp

FS = 44_100


@pytest.fixture(scope="module")
def riff():
    return guitar_riff(FS, 1.0)


def test_streaming_in_any_block_size_equals_the_whole_signal_call(riff):
    stereo = np.stack([riff, 0.5 * riff[::-1]])
    whole = Centaur(FS, gain=0.8)(stereo)
    for block in (1, 64, 1000):
        pedal = Centaur(FS, gain=0.8)
        pieces = [pedal.process(stereo[:, i:i + block]) for i in range(0, stereo.shape[1], block)]
        streamed = np.concatenate(pieces, axis=1)
        lag = pedal.latency
        assert np.max(np.abs(streamed[:, lag:] - whole[:, :-lag])) < 1e-5


def test_mono_in_mono_out_float32(riff):
    y = Centaur(FS)(riff)
    assert y.shape == riff.shape and y.dtype == np.float32
    assert np.all(np.isfinite(y)) and np.max(np.abs(y)) > 0.01


def _max_step(y):
    return np.max(np.abs(np.diff(y)))


@pytest.mark.parametrize("knob", ["gain", "treble", "level"])
def test_a_knob_jump_while_playing_does_not_click(knob):
    x = sine(220.0, 1.5, 0.3)
    steady = []
    for value in (0.0, 1.0):
        steady.append(_max_step(Centaur(FS, **{knob: value})(x)[FS // 2:]))
    pedal = Centaur(FS, **{knob: 0.0})
    block = 64
    out = []
    for i in range(0, len(x), block):
        if i == FS // 2:
            setattr(pedal, knob, 1.0)  # slammed from 0 to 1 in one go
        out.append(pedal.process(x[i:i + block]))
    y = np.concatenate(out)
    assert _max_step(y[FS // 4:]) <= 1.05 * max(steady)


def test_knobs_do_what_their_names_say(riff):
    def rms(y):
        return float(np.sqrt(np.mean(np.square(y))))

    levels = [rms(Centaur(FS, level=v)(riff)) for v in (0.1, 0.5, 1.0)]
    assert levels[0] < levels[1] < levels[2]

    def high_share(y):
        spectrum = np.abs(np.fft.rfft(y)) ** 2
        return spectrum[len(spectrum) // 8:].sum() / spectrum.sum()  # above ~2.7 kHz

    trebles = [high_share(Centaur(FS, treble=t)(riff)) for t in (0.0, 0.5, 1.0)]
    assert trebles[0] < trebles[1] < trebles[2]

    def crest(y):
        return np.max(np.abs(y)) / rms(y)

    x = sine(220.0, 0.5, 0.3)
    # more gain: more clipping, so a flatter top (lower crest factor) on a pure tone
    crests = [crest(Centaur(FS, gain=g)(x)[FS // 4:]) for g in (0.0, 0.5, 1.0)]
    assert crests[0] > crests[1] > crests[2]


def test_the_two_diodes_sound_different():
    x = sine(220.0, 0.3, 0.3)
    ge = GainStage(FS, 1.0, "1n34a")(x)
    schottky = GainStage(FS, 1.0, "mbrb2545ct")(x)
    assert np.sum((ge - schottky) ** 2) / np.sum(ge ** 2) > 0.01


@pytest.mark.parametrize("rate", [22_050, 32_000, 48_000, 96_000, 192_000])
def test_every_supported_rate_gives_the_same_pedal(rate):
    # a 500 Hz tone comes out at the same level (within 0.5 dB) at any rate
    ref = Centaur(FS, gain=0.5)(sine(500.0, 0.4, 0.1))[FS // 5:]
    y = Centaur(rate, gain=0.5)(sine(500.0, 0.4, 0.1, rate))[rate // 5:]
    assert abs(20 * np.log10(np.std(y) / np.std(ref))) < 0.5


def _pedal_response(rate, gain, seconds=0.25, volts=1e-4):
    """|H| of the whole pedal in 1 / seconds Hz bins up to 16 kHz, from a `volts` impulse a
    tenth of a second in (a latency-compensated render would cut the oversampling filters'
    pre-ringing off an impulse at the start)."""
    x = np.zeros(int(seconds * rate), np.float32)
    x[rate // 10] = volts
    y = Centaur(rate, gain=gain, treble=0.5, level=0.5)(x).astype(np.float64)
    return np.abs(np.fft.rfft(y))[:int(16_000 * seconds) + 1] / volts


@pytest.mark.parametrize(("gain", "bound"), [(0.0, 0.2), (0.5, 0.2), (1.0, 1.1)])
def test_the_top_end_is_the_same_at_every_rate(gain, bound):
    """Small signals come out within 0.2 dB of the 192 kHz render's from 20 Hz to 16 kHz (or to
    the oversampling filters' passband edge, 0.43 of the rate, where that is lower) at every
    supported rate, at Gain 0 and 0.5 (with C13 on the trapezoidal rule: 1.1 dB low at 16 kHz
    at 44.1 kHz). At Gain 1 C8's share is left (1.0 dB low at 16 kHz at 44.1 kHz, from 1.9)."""
    reference = _pedal_response(192_000, gain)
    for rate in (22_050, 32_000, 44_100, 48_000, 96_000):
        top = int(min(16_000, PASSBAND_EDGE * rate) * 0.25)
        db = 20 * np.log10(_pedal_response(rate, gain)[5:top + 1] / reference[5:top + 1])
        assert np.max(np.abs(db)) < bound, rate


@pytest.mark.parametrize("rate", [8_000, 16_000, 384_000])
def test_unsupported_rates_are_refused(rate):
    with pytest.raises(KlonError, match="sample rate"):
        Centaur(rate)


@pytest.mark.parametrize("knob", ["gain", "treble", "level"])
@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan")])
def test_knob_values_outside_0_1_are_refused(knob, value):
    with pytest.raises(KlonError, match=knob):
        Centaur(FS, **{knob: value})
    pedal = Centaur(FS)
    with pytest.raises(KlonError, match=knob):
        setattr(pedal, knob, value)


def test_nan_input_is_refused_and_the_stream_survives(riff):
    pedal = Centaur(FS)
    first = pedal.process(riff[:512])
    bad = riff[512:1024].copy()
    bad[10] = np.nan
    with pytest.raises(KlonError, match="NaN"):
        pedal.process(bad)
    after = pedal.process(riff[512:1024])
    assert np.all(np.isfinite(after)) and np.all(np.isfinite(first))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["noise", "dc", "silence", "impulse"]),
       level_db=st.floats(-60.0, 40.0), seed=st.integers(0, 2 ** 16),
       gain=st.floats(0, 1), treble=st.floats(0, 1), level=st.floats(0, 1))
def test_any_finite_input_gives_finite_bounded_output(kind, level_db, seed, gain, treble, level):
    amplitude = 10 ** (level_db / 20)  # up to +40 dBFS: 100 V at the input
    n = 2048
    rng = np.random.default_rng(seed)
    x = {"noise": lambda: rng.uniform(-1, 1, n), "dc": lambda: np.ones(n),
         "silence": lambda: np.zeros(n), "impulse": lambda: np.eye(1, n)[0]}[kind]() * amplitude
    pedal = Centaur(FS, gain=gain, treble=treble, level=level)
    for block in np.split(x.astype(np.float32), 4):
        y = pedal.process(block)
        assert np.all(np.isfinite(y))
        # nothing in the pedal can swing beyond U2's supplies
        assert np.max(np.abs(y)) < 25.0


# --- anti-aliasing (ADAA) of U1B's clamp and the diode pair ------------------------------------

LOW, HIGH = -3.0, 3.0  # U1B's swing, AC volts


def test_the_clamp_excess_antiderivative_differentiates_to_the_excess():
    h = 1e-5
    for u in np.linspace(-100, 100, 4001):
        slope = (clamp_excess_antiderivative(u + h, LOW, HIGH)
                 - clamp_excess_antiderivative(u - h, LOW, HIGH)) / (2 * h)
        assert abs(slope - (u - min(max(u, LOW), HIGH))) < 1e-6 * max(1.0, abs(u))


def test_the_clamp_s_segment_mean_is_the_mean_of_the_clamp():
    """Against a fine midpoint rule on the clamp itself, for segments on one side, across one
    limit, across both, short ones and empty ones; and the anti-aliased clamp is u1 exactly
    inside the limits, the limit exactly deep beyond one."""
    rng = np.random.default_rng(1)
    ends = [(0.0, 1.0), (4.0, 9.0), (-9.0, -4.0), (2.0, 4.0), (4.0, 2.0), (-5.0, 5.0),
            (3.0 - 1e-9, 3.0 + 1e-9), (7.0, 7.0 + 1e-12), (3.0, 3.0), (5.0, 5.0), (-3.0, 8.0)]
    ends += [tuple(rng.uniform(-12, 12, 2)) for _ in range(300)]
    for u0, u1 in ends:
        if u0 == u1:
            expected = min(max(u0, LOW), HIGH)
        else:
            u = u0 + (u1 - u0) * (np.arange(20_000) + 0.5) / 20_000
            expected = np.mean(np.clip(u, LOW, HIGH))
        assert abs(mean_clamp(u0, u1, LOW, HIGH) - expected) < 1e-6, (u0, u1)
    for u0, u1 in [(-2.0, 2.5), (3.0, -3.0), (0.1, 0.1 + 1e-14)]:
        assert antialiased_clamp(u0, u1, LOW, HIGH) == pytest.approx(u1, abs=1e-15)
    for u0, u1 in [(4.0, 40.0), (90.0, 3.5), (-3.1, -7.0)]:
        assert antialiased_clamp(u0, u1, LOW, HIGH) == (HIGH if u1 > 0 else LOW)


def _response_db(stage, volts=1e-4, seconds=0.5):
    x = np.zeros(int(seconds * stage.sample_rate))
    x[100] = volts
    spectrum = np.abs(np.fft.rfft(stage(x).astype(np.float64))) / volts
    f = np.fft.rfftfreq(x.size, 1 / stage.sample_rate)
    band = (f >= 20) & (f <= 20_000)
    return 20 * np.log10(spectrum[band])


@pytest.mark.parametrize("rate", [44_100, 96_000])
@pytest.mark.parametrize("gain", [0.0, 0.5, 1.0])
def test_antialiasing_leaves_the_small_signal_response_as_it_was(rate, gain):
    """A 0.1 mV impulse comes out the same, 20 Hz to 20 kHz, to 0.001 dB (the issue asks 0.01):
    both nonlinearities pass exactly what is linear. (At Gain 1 U1B's high-frequency gain makes
    the impulse big enough inside for the pair to bend a little: 2e-4 dB.)"""
    on = _response_db(GainStage(rate, gain))
    off = _response_db(GainStage(rate, gain, antialiasing=False))
    assert np.max(np.abs(on - off)) < 1e-3


def test_antialiasing_changes_a_loud_tone_but_not_a_quiet_one():
    loud, quiet = sine(3_000.0, 0.1, 1.0), sine(3_000.0, 0.1, 0.001)
    for x, changed in ((loud, True), (quiet, False)):
        on, off = GainStage(FS, 1.0)(x), GainStage(FS, 1.0, antialiasing=False)(x)
        assert (np.max(np.abs(on - off)) > 1e-3) == changed
    assert repr(GainStage(FS, antialiasing=False)).endswith("antialiasing=False)")
    assert GainStage(FS).antialiasing and "antialiasing" not in repr(GainStage(FS))


def _glide(x, antialiasing, at=64 * 200):
    """x (float64) through a stage from Gain 0, the knob set to 1 at sample `at`: a 50 ms
    glide whose pots (and so the diode pair's port resistance) move every 16 samples."""
    stage = GainStage(FS, 0.0, antialiasing=antialiasing)
    y = np.empty_like(x)
    for i in range(0, x.size, 64):
        if i == at:
            stage.gain = 1.0
        stage.process(x[i:i + 64], out=y[i:i + 64])
    return y


def test_a_gain_glide_does_not_click_with_antialiasing():
    """On silence it stays silent. On a tone the largest sample-to-sample jump during the glide,
    against the largest of the steady states at Gain 0 and 1, grows no more than without ADAA
    (without, it is up to 1.57 times: the capacitors settle to the new Gain). And the memory
    follows the moving pots: its antiderivative depends on the port resistance, and one kept
    from before a step (not recomputed for the new pots) puts 1.5e-2 V spikes on the 50 Hz
    tone, where the stage with and without ADAA stay within 4e-5 V of each other."""
    silence = np.zeros(FS // 2)
    assert np.max(np.abs(_glide(silence, True))) == 0.0
    glide = slice(64 * 200, 64 * 200 + 3000)
    for freq, volts in ((50.0, 1.0), (220.0, 0.3), (1000.0, 0.3)):
        x = volts * np.sin(2 * np.pi * freq * np.arange(FS // 2) / FS)
        ratios = {}
        for antialiasing in (True, False):
            steady = max(_max_step(GainStage(FS, gain, antialiasing=antialiasing)(x)[FS // 4:])
                         for gain in (0.0, 1.0))
            ratios[antialiasing] = _max_step(_glide(x, antialiasing)[glide]) / steady
        assert ratios[True] <= ratios[False] + 0.02
        if freq == 50.0:
            on, off = _glide(x, True), _glide(x, False)
            assert np.max(np.abs(on[glide] - off[glide])) < 1e-3


def test_a_non_finite_antialiasing_memory_restarts_the_channel_from_rest():
    stage = GainStage(FS, 0.7)
    x = sine(440.0, 0.05, 0.5)
    stage.process(x)
    stage.kernel_state.adaa[0, :] = np.nan
    stage.process(x)  # this block is lost, and the oversampling filters' tails next block
    stage.process(x)
    after = stage.process(x)
    assert np.all(np.isfinite(after)) and np.max(np.abs(after)) > 0.1
    assert np.all(np.isfinite(stage.kernel_state.adaa))
