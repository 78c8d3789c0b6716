"""Issue 13, items 1 and 2: the Python API takes what users hand it, and nothing reaches a
compiled kernel unchecked (klon.core.processor). Each test is something a user would notice:
a crash, a silent truncation, audio read with its axes swapped, a raw numba error. Then the
properties: any finite input, at any level, gives finite output within the op-amps' reach,
for both engines and both gain stages."""
import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from klon import Centaur, GainStage, KlonError
from klon.core.processor import MAX_CHANNELS, as_volts, audio_layout
from klon.neural.bank import ModelBank
from klon.pedal.stages import Tone

RATE = 44_100
# U2 swings to +-11.6 V; the half-band down-sampler's taps sum (in absolute value) to under 2
# and the output stage is passive, so no input may drive any of these past 25 V
BOUND = 25.0

MAKERS = {
    "circuit pedal": lambda: Centaur(RATE, gain=0.7, treble=0.8, level=1.0),
    "neural pedal": lambda: Centaur(RATE, gain=0.7, treble=0.8, level=1.0, engine="neural"),
    "circuit gain stage": lambda: GainStage(RATE, gain=0.7),
    "neural gain stage": lambda: ModelBank("circuit", gain=0.7),
}
ENGINES = list(MAKERS)


@pytest.fixture(scope="module")
def processors():
    """One of each, built once: hypothesis calls them many times (a call starts from rest)."""
    return {kind: make() for kind, make in MAKERS.items()}


@pytest.fixture(scope="module")
def stereo():
    """One second of a decaying stereo chord, frames x channels as soundfile reads it."""
    t = np.arange(RATE) / RATE
    left = 0.3 * np.sin(2 * np.pi * 110 * t) * np.exp(-2 * t)
    right = 0.2 * np.sin(2 * np.pi * 165 * t + 1.0) * np.exp(-3 * t)
    return np.stack([left, right], axis=1)


def streamed(p, blocks):
    """The blocks through `p.process` from rest, joined along the frames."""
    p.reset()
    return [p.process(b) for b in blocks]


# --- item 1: `out` is checked before any compiled code runs --------------------------------

@pytest.mark.parametrize("engine", ["circuit", "neural"])
def test_a_wrong_out_is_one_clear_error_and_the_stream_goes_on(engine, stereo):
    """The issue's crashes, as a user met them: a million samples into a 10-sample `out` (a
    segfault), a stereo block into a mono-shaped `out` (the neural engine's double free), an
    int32 `out` (silently truncated). Each is refused before the kernel runs, so the stream's
    state is as if the call had not happened."""
    x = np.ascontiguousarray(stereo.T, dtype=np.float32)
    pedal, clean = Centaur(RATE, engine=engine), Centaur(RATE, engine=engine)
    first = pedal.process(x[:, :4096])
    bad_calls = [
        (np.zeros(1_000_000, np.float32), np.zeros((1, 10)), "shaped like the block"),
        (x[:, 4096:8192], np.zeros(8192, np.float32), "shaped like the block"),
        (x[:, 4096:8192], np.zeros((2, 4096), np.int32), "float32 or float64"),
        (x[:, 4096:8192], np.zeros((2, 4096), np.float16), "float32 or float64"),
        (x[:, 4096:8192], np.zeros((2, 4096), np.complex64), "float32 or float64"),
        (x[:, 4096:8192], [[0.0] * 4096] * 2, "got list"),
        (x[:, 4096:8192], np.broadcast_to(np.zeros(1, np.float32), (2, 4096)), "read-only"),
    ]
    for block, out, message in bad_calls:
        with pytest.raises(KlonError, match=message) as error:
            pedal.process(block, out=out)
        assert "\n" not in str(error.value)
    np.testing.assert_array_equal(first, clean.process(x[:, :4096]))
    np.testing.assert_array_equal(pedal.process(x[:, 4096:8192]), clean.process(x[:, 4096:8192]))


@pytest.mark.parametrize("engine", ["circuit", "neural"])
def test_a_steady_stream_is_checked_like_any_other(engine, stereo):
    """Once a stream has settled into C-ordered float blocks of its channel count (the blocks a
    host hands over, which skip process's conversions), a read-only or mistyped `out`, an `out`
    that is the block, and a block holding NaN are met exactly as in any other call."""
    x = np.ascontiguousarray(stereo.T, dtype=np.float32)
    blocks = [x[:, i:i + 512].copy() for i in range(0, 8192, 512)]
    pedal, clean = Centaur(RATE, engine=engine), Centaur(RATE, engine=engine)
    out = np.empty((2, 512), np.float32)
    expected = [clean.process(b) for b in blocks]
    for block, want in zip(blocks[:4], expected[:4], strict=True):
        np.testing.assert_array_equal(pedal.process(block, out=out), want)
    read_only = np.zeros((2, 512), np.float32)
    read_only.flags.writeable = False
    for bad, message in ((read_only, "read-only"), (np.zeros((2, 512), np.int16), "float32"),
                         (np.zeros((2, 512), ">f4"), "float32 or float64")):
        with pytest.raises(KlonError, match=message):
            pedal.process(blocks[4], out=bad)
    poisoned = blocks[4].copy()
    poisoned[1, 100] = np.nan
    with pytest.raises(KlonError, match="NaN or Inf"):
        pedal.process(poisoned, out=out)
    in_place = blocks[4].copy()
    assert pedal.process(in_place, out=in_place) is in_place
    np.testing.assert_array_equal(in_place, expected[4])
    for block, want in zip(blocks[5:], expected[5:], strict=True):
        np.testing.assert_array_equal(pedal.process(block, out=out), want)


@pytest.mark.parametrize("kind", ENGINES + ["tone"])
def test_out_may_be_the_block_itself_or_overlap_it(kind, processors):
    """In place (out is the block) gives what a separate out gives; so does an out that
    overlaps the block one sample along (a kernel writing ahead of its reading would smear)."""
    p = processors[kind] if kind in processors else Tone(RATE, treble=0.3)
    rng = np.random.default_rng(1)
    x = (0.5 * rng.standard_normal(3000)).astype(np.float32)
    expected = streamed(p, [x])[0]
    block = x.copy()
    p.reset()
    assert p.process(block, out=block) is block
    np.testing.assert_array_equal(block, expected)
    buffer = np.concatenate([x, [0.0]]).astype(np.float32)
    p.reset()
    p.process(buffer[:-1], out=buffer[1:])
    np.testing.assert_array_equal(buffer[1:], expected)


def test_a_strided_or_transposed_out_is_filled_not_lost():
    """An `out` that is a view (every other sample of a buffer, a transposed array) gets the
    samples: a reshape would have filled a copy and dropped it."""
    rng = np.random.default_rng(2)
    x = (0.3 * rng.standard_normal((2, 2000))).astype(np.float32)
    expected = streamed(Centaur(RATE), [x])[0]
    buffer = np.zeros((2, 4000))
    pedal = Centaur(RATE)
    pedal.process(x, out=buffer[:, ::2])
    np.testing.assert_allclose(buffer[:, ::2], expected, rtol=1e-6, atol=1e-7)
    assert not buffer[:, 1::2].any()
    mono_buffer = np.zeros(4000, np.float32)
    pedal.reset()
    pedal.process(x[0], out=mono_buffer[::2])
    np.testing.assert_allclose(mono_buffer[::2], expected[0], rtol=0, atol=1e-6)
    transposed = np.zeros((2000, 2), np.float32).T  # channels x frames, Fortran-ordered
    pedal.reset()
    pedal.process(x, out=transposed)
    np.testing.assert_array_equal(transposed, expected)


def test_an_empty_block_is_an_empty_result():
    pedal = Centaur(RATE)
    assert pedal.process(np.zeros(0, np.float32)).shape == (0,)
    assert pedal.process(np.zeros((2, 0))).shape == (2, 0)
    assert pedal(np.zeros((0, 2))).shape == (0, 2)


# --- item 2: layouts -----------------------------------------------------------------------

@pytest.mark.parametrize("engine", ["circuit", "neural"])
def test_soundfiles_frames_x_channels_comes_back_in_that_layout(engine, stereo):
    """`x, sr = soundfile.read(f); Centaur(sr)(x)` once took a second of stereo as 44 100
    channels (2 GB; 30 s was killed for lack of memory): now it is frames x channels, and the
    result is too, the same samples as channels x frames gives."""
    pedal = Centaur(RATE, engine=engine)
    y = pedal(stereo)
    assert y.shape == stereo.shape and y.dtype == np.float32
    np.testing.assert_array_equal(y, pedal(stereo.T).T)
    np.testing.assert_array_equal(y[:, 1], pedal(stereo[:, 1]))


def test_streaming_soundfile_blocks_matches_the_whole_file(stereo):
    """soundfile.blocks-style streaming (frames x channels, the last block short) was 160 %
    ESR off: now it is the whole-file result, delayed by the latency. The file's length leaves
    a last block of 2 frames x 2 channels, square: it follows the stream's layout."""
    pedal = Centaur(RATE)
    x = stereo[:4 * 1024 + 2 - pedal.latency]
    padded = np.concatenate([x, np.zeros((pedal.latency, 2))])
    blocks = [padded[i:i + 1024] for i in range(0, padded.shape[0], 1024)]
    assert blocks[-1].shape == (2, 2)
    y = np.concatenate(streamed(pedal, blocks))
    assert y.shape == padded.shape
    np.testing.assert_allclose(y[pedal.latency:], Centaur(RATE)(x), rtol=0, atol=2e-7)


def test_short_blocks_are_read_by_the_channel_count_then_the_shorter_side():
    """Both sides 64 or less: a fresh pedal takes the shorter side as the channels (as
    pedalboard does), but one frame of stereo, (2, 1), is klon's own channels x frames; a
    stream's channel count wins, so its last block may be shorter than its channel count; a
    square block follows the stream, and with nothing before it is refused."""
    assert audio_layout((2, 64)) is False and audio_layout((64, 2)) is True
    assert audio_layout((2, 1)) is False and audio_layout((16, 1)) is False
    assert audio_layout((2, 1), channels=2, frames_first=False) is False
    assert audio_layout((1, 2), channels=2, frames_first=True) is True
    assert audio_layout((1, 2), channels=2) is True  # after reset(2)
    assert audio_layout((5, 3), channels=1, frames_first=False) is False  # the stream's way
    assert audio_layout((2, 1), channels=1, frames_first=True) is True  # a mono column stream
    assert audio_layout((2, 2), channels=2, frames_first=True) is True
    assert audio_layout((1, 1)) is False and audio_layout((5,)) is None
    assert audio_layout((MAX_CHANNELS, 10 ** 6)) is False
    assert audio_layout((10 ** 6, MAX_CHANNELS)) is True
    pedal = Centaur(RATE)
    rng = np.random.default_rng(3)
    x = (0.2 * rng.standard_normal((2, 48))).astype(np.float32)
    y = pedal.process(x.T)  # 48 frames x 2 channels into a fresh (mono) pedal
    assert y.shape == (48, 2) and pedal.channels == 2
    np.testing.assert_array_equal(y, streamed(Centaur(RATE), [x])[0].T)
    with pytest.raises(KlonError, match=r"shape \(2, 2\) is ambiguous") as error:
        Centaur(RATE)(np.zeros((2, 2)))
    assert "\n" not in str(error.value)
    # the two ways out the message gives: reset(2) (as klon process does), or frames_first
    square = x[:, :2]
    expected = streamed(Centaur(RATE), [x])[0][:, :2]  # causal: the first two frames' output
    pedal = Centaur(RATE)
    pedal.reset(2)
    np.testing.assert_array_equal(pedal.process(square), expected)
    pedal = Centaur(RATE)
    pedal.frames_first = True
    np.testing.assert_array_equal(pedal.process(np.ascontiguousarray(square.T)), expected.T)


def test_more_than_64_channels_either_way_is_refused_at_once():
    """A (100 000, 100) array is not audio klon can take whichever way round: one line,
    before any state is sized for it."""
    for p in (Centaur(RATE), GainStage(RATE)):
        with pytest.raises(KlonError, match="more than 64 channels"):
            p(np.zeros((100_000, 100), np.float32))
        with pytest.raises(KlonError, match="more than 64 channels"):
            p.process(np.zeros((65, 65), np.float32))
        assert p.channels == 1


def test_arrays_of_other_ranks_are_refused():
    with pytest.raises(KlonError, match=r"1-D \(mono\) or 2-D"):
        Centaur(RATE)(np.zeros((2, 3, 100), np.float32))
    with pytest.raises(KlonError, match=r"1-D \(mono\) or 2-D"):
        Centaur(RATE).process(np.float32(0.5))


# --- item 2: sample types ------------------------------------------------------------------

def test_integer_pcm_is_scaled_like_the_file_it_came_from(tmp_path, stereo):
    """int16 samples were taken as volts (a full-scale sample as 32 767 V). A PCM file read as
    int16 now gives what the same file read as float gives: full scale is 1.0 V."""
    path = tmp_path / "riff.wav"
    sf.write(path, stereo, RATE, subtype="PCM_16")
    as_int, _ = sf.read(path, dtype="int16")
    as_float, _ = sf.read(path, dtype="float32")
    pedal = Centaur(RATE)
    np.testing.assert_array_equal(pedal(as_int), pedal(as_float))


@pytest.mark.parametrize("dtype, full_scale, zero", [
    (np.int8, 2 ** 7, 0), (np.int16, 2 ** 15, 0), (np.int32, 2 ** 31, 0),
    (np.int64, 2 ** 63, 0), (np.uint8, 2 ** 7, 2 ** 7), (np.uint16, 2 ** 15, 2 ** 15)])
def test_every_integer_type_is_pcm_with_full_scale_one_volt(dtype, full_scale, zero):
    info = np.iinfo(dtype)
    pcm = np.array([info.min, zero, info.max], dtype=dtype)
    volts = as_volts(pcm)
    assert volts.dtype == np.float32
    np.testing.assert_allclose(volts, [-1.0, 0.0, (info.max - zero) / full_scale], rtol=1e-7)


def test_bool_and_complex_are_refused_not_cast():
    """bool was taken as 0/1 V and complex lost its imaginary part without a word."""
    pedal = Centaur(RATE)
    for x in (np.ones(512, bool), np.ones(512, np.complex64), np.array(["a"] * 512)):
        with pytest.raises(KlonError, match="real numbers") as error:
            pedal(x)
        assert str(x.dtype) in str(error.value)
        with pytest.raises(KlonError, match="real numbers"):
            pedal.process(x)


@pytest.mark.parametrize("kind", ENGINES)
def test_other_float_widths_and_byte_orders_run(kind, processors):
    """float16 gave raw numba errors (NotImplementedError: float16), longdouble and
    big-endian arrays a numba TypingError; now they run as the float32 or float64 they
    hold."""
    p = processors[kind]
    rng = np.random.default_rng(4)
    x = (0.2 * rng.standard_normal(1000)).astype(np.float16)
    y = p(x)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, p(x.astype(np.float32)))
    np.testing.assert_array_equal(p(x.astype(np.longdouble)), p(x.astype(np.float64)))
    np.testing.assert_array_equal(p(x.astype(">f4")), y)
    p.reset()
    np.testing.assert_array_equal(p.process(x), streamed(p, [x.astype(np.float32)])[0])


def test_a_list_of_numbers_is_volts():
    pedal = Centaur(RATE)
    np.testing.assert_array_equal(pedal([0, 1, 0, -1] * 64),
                                  pedal(np.array([0.0, 1.0, 0.0, -1.0] * 64)))
    with pytest.raises(KlonError, match="array of samples"):
        pedal([[0.0, 1.0], [0.0]])


# --- properties: finite and bounded output for any finite input ---------------------------

LEVELS = [0.0, 5e-324, 1e-310, 1e-40, 1e-20, 1e-6, 0.01, 1.0, 30.0, 1e5, 1e15, 1e30, 3e38,
          1e100, 1e300, 1.7e308]


@st.composite
def finite_audio(draw):
    """Any finite float32 or float64 signal: a waveform in [-1, 1] scaled to any level from
    subnormal to the largest double, or raw values anywhere in the type's range (hypothesis
    favours its extremes: the largest, the subnormal, signed zeros)."""
    frames = draw(st.integers(1, 600))
    if draw(st.booleans()):
        # stereo longer than 64 frames: a shorter one may be ambiguous (tested above)
        shape = draw(st.sampled_from([(frames,), (2, frames + MAX_CHANNELS)]))
        wave = draw(hnp.arrays(np.float64, shape, elements=st.floats(-1.0, 1.0)))
        dtype = draw(st.sampled_from([np.float32, np.float64]))
        level = draw(st.sampled_from(LEVELS))
        if dtype is np.float32:
            level = min(level, float(np.finfo(np.float32).max))
        return (wave * level).astype(dtype)
    width = draw(st.sampled_from([32, 64]))
    return draw(hnp.arrays(np.float32 if width == 32 else np.float64, frames,
                           elements=st.floats(allow_nan=False, allow_infinity=False,
                                              width=width)))


def assert_finite_and_bounded(y, x):
    assert np.all(np.isfinite(y)), f"non-finite output for input peaking at {np.abs(x).max()}"
    assert np.max(np.abs(y), initial=0.0) <= BOUND, f"{np.abs(y).max()} V out"


@pytest.mark.parametrize("kind", ENGINES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x=finite_audio())
def test_any_finite_input_gives_finite_bounded_output(kind, processors, x):
    p = processors[kind]
    y = p(x)
    assert y.shape == x.shape
    assert_finite_and_bounded(y, x)


@pytest.mark.parametrize("kind", ENGINES)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks=st.lists(finite_audio().filter(lambda a: a.ndim == 1), min_size=2, max_size=5))
def test_a_stream_recovers_from_any_finite_block(kind, processors, blocks):
    """The state a huge (or subnormal) block leaves behind never turns a later block's output
    non-finite or unbounded: a stream of mono blocks, each at its own level."""
    p = processors[kind]
    p.reset(1)
    for x in blocks:
        assert_finite_and_bounded(p.process(x), x)


def test_one_recurrent_model_checks_out_and_samples_too():
    """klon.neural.RecurrentModel streams with its own calls (channels x inputs x frames): a
    read-only or float16 `out` was a raw numba error, float16 input too, int16 input volts."""
    from klon.core.paths import SHIPPED_MODELS
    from klon.neural import RecurrentModel
    model = RecurrentModel(sorted((SHIPPED_MODELS / "circuit").glob("*.json"))[0])
    x = (0.2 * np.random.default_rng(5).standard_normal(1000)).astype(np.float32)
    for out in (np.broadcast_to(np.zeros(1, np.float32), (1000,)), np.zeros(1000, np.float16),
                [0.0] * 1000):
        with pytest.raises(KlonError, match="writable float32 or float64"):
            model.process(x, out=out)
    np.testing.assert_array_equal(model(x.astype(np.float16)),
                                  model(x.astype(np.float16).astype(np.float32)))
    pcm = (x * 2 ** 15).astype(np.int16)
    np.testing.assert_array_equal(model(pcm), model(pcm / np.float32(2 ** 15)))


@pytest.mark.parametrize("kind", ENGINES + ["tone"])
def test_nan_or_inf_in_is_refused_by_every_processor_and_the_stream_goes_on(kind):
    """The circuit gain stage and the linear stages passed NaN on (their kernels do not look):
    now every processor refuses it, as the pedal did, and its state is untouched."""
    p = MAKERS[kind]() if kind in MAKERS else Tone(RATE, treble=0.3)
    clean = MAKERS[kind]() if kind in MAKERS else Tone(RATE, treble=0.3)
    x = (0.3 * np.random.default_rng(6).standard_normal((2, 800))).astype(np.float32)
    np.testing.assert_array_equal(p.process(x[:, :400]), clean.process(x[:, :400]))
    for bad in (np.nan, np.inf, -np.inf):
        block = x[:, 400:].copy()
        block[1, 123] = bad
        with pytest.raises(KlonError, match="NaN or Inf"):
            p.process(block)
    np.testing.assert_array_equal(p.process(x[:, 400:]), clean.process(x[:, 400:]))
