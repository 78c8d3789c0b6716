"""The circuit pedal as a user streams and tweaks it."""
import numpy as np
import pytest
from conftest import sine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from klon import Centaur, GainStage, KlonError
from klon.dsp.synth import guitar_riff

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
