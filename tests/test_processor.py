"""One processor contract for every stage, gain stage and pedal (klon.core.processor), as a
user holds it: the same calls, the same output type, the same checks and errors."""
import numpy as np
import pytest

from klon import Centaur, GainStage, KlonError
from klon.core.processor import Knob, Processor
from klon.neural.bank import ModelBank
from klon.pedal.stages import InputBuffer, OutputStage, Tone

RATE = 44_100


def make(kind):
    return {
        "circuit pedal": lambda: Centaur(RATE, gain=0.6),
        "neural pedal": lambda: Centaur(RATE, gain=0.6, engine="neural"),
        "circuit gain stage": lambda: GainStage(RATE, gain=0.6),
        "neural gain stage": lambda: ModelBank("circuit", gain=0.6),
        "input buffer": lambda: InputBuffer(RATE),
        "tone": lambda: Tone(RATE, treble=0.3),
        "output stage": lambda: OutputStage(RATE, level=0.7),
    }[kind]()


KINDS = ["circuit pedal", "neural pedal", "circuit gain stage", "neural gain stage",
         "input buffer", "tone", "output stage"]


@pytest.fixture(scope="module")
def signal():
    t = np.arange(4096) / RATE
    return (0.2 * np.sin(2 * np.pi * 220 * t) * np.exp(-3 * t)).astype(np.float32)


@pytest.mark.parametrize("kind", KINDS)
def test_every_processor_keeps_the_contract(kind, signal):
    p = make(kind)
    assert isinstance(p, Processor)
    assert p.sample_rate == RATE and isinstance(p.latency, int) and p.latency >= 0
    # a whole signal: float32, the input's shape, the latency removed
    y = p(signal)
    assert y.shape == signal.shape and y.dtype == np.float32 and np.all(np.isfinite(y))
    stereo = p(np.stack([signal, -signal]))
    assert stereo.shape == (2, signal.size) and p.channels == 2
    np.testing.assert_array_equal(stereo[0], y)
    # streaming: the same samples, delayed by `latency`, in any block size, into float64 `out`
    p.reset(1)
    out = np.zeros(signal.size + p.latency)
    padded = np.concatenate([signal, np.zeros(p.latency, np.float32)])
    for start in range(0, padded.size, 100):
        block = padded[start:start + 100]
        assert p.process(block, out=out[start:start + 100]) is not None
    np.testing.assert_allclose(out[p.latency:], y, rtol=0, atol=2e-7)


@pytest.mark.parametrize("kind", KINDS)
def test_bad_blocks_get_one_clear_error(kind, signal):
    p = make(kind)
    block = np.stack([signal[:256], signal[:256]])
    with pytest.raises(KlonError, match="shaped like the block"):
        p.process(np.zeros(1_000, np.float32), out=np.zeros((1, 10)))  # once a segfault
    with pytest.raises(KlonError, match="shaped like the block"):
        p.process(block, out=np.zeros(512, np.float32))  # mono-shaped out for stereo
    with pytest.raises(KlonError, match="float32 or float64 array"):
        p.process(block, out=np.zeros((2, 256), np.int32))  # would truncate silently
    with pytest.raises(KlonError, match="float32 or float64 array"):
        p.process(block, out=np.zeros((2, 256), np.float16))  # numba cannot write it
    with pytest.raises(KlonError, match="read-only"):
        p.process(block, out=np.broadcast_to(np.zeros(1), (2, 256)))  # numba cannot write it
    with pytest.raises(KlonError, match="real numbers"):
        p.process(block > 0)
    with pytest.raises(KlonError, match="1-D .mono. or 2-D"):
        p.process(np.zeros((2, 3, 4), np.float32))


@pytest.mark.parametrize("kind", ["circuit pedal", "neural pedal", "circuit gain stage",
                                  "neural gain stage", "tone", "output stage"])
def test_knobs_check_their_range_glide_and_show_in_repr(kind):
    p = make(kind)
    names = [n for n in ("gain", "treble", "level") if isinstance(getattr(type(p), n, None), Knob)]
    assert names, "every processor but the input buffer has a knob"
    for name in names:
        with pytest.raises(KlonError, match=f"{name} must be between 0 and 1"):
            setattr(p, name, 1.5)
        with pytest.raises(KlonError, match=f"{name} must be a number"):
            setattr(p, name, "loud")
        setattr(p, name, 0.25)
        assert getattr(p, name) == 0.25
        assert f"{name}=0.25" in repr(p)
    assert repr(p).startswith(f"{type(p).__name__}(44100")


def test_both_engines_are_the_same_pedal():
    circuit, neural = Centaur(RATE, engine="circuit"), Centaur(RATE, engine="neural")
    assert isinstance(neural, Centaur) and isinstance(circuit, Centaur)
    assert type(neural) is type(circuit)
    assert "engine='neural'" in repr(neural) and "engine='circuit'" in repr(circuit)
    # the shared stages are the same objects' kinds; only the gain stage differs
    for stage in ("input_buffer", "tone", "output_stage"):
        assert type(getattr(neural, stage)) is type(getattr(circuit, stage))
    assert isinstance(circuit.gain_stage, GainStage)
    assert isinstance(neural.gain_stage, ModelBank)


def test_engine_options_belong_to_their_engine():
    with pytest.raises(KlonError, match="unknown engine 'tube'"):
        Centaur(RATE, engine="tube")
    with pytest.raises(KlonError, match="pass engine='neural'"):
        Centaur(RATE, models="circuit")
    with pytest.raises(KlonError, match="apply to the circuit engine"):
        Centaur(RATE, engine="neural", oversampling=4)
    with pytest.raises(KlonError, match="unsupported sample rate"):
        Centaur(8_000)


@pytest.mark.parametrize("stage", [InputBuffer, Tone, OutputStage])
def test_a_stereo_block_filters_each_channel_as_a_mono_one_does(stage):
    """The linear stages' stereo path for a knob at rest (both filters in registers) gives each
    channel what the one-channel loop gives it, bit for bit, clamping included; a knob glide
    between the blocks takes the general loop and back."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-6.0, 6.0, (2, 3000))  # past U1's and U2's swing: the clamps act
    knob = {"treble": 0.8} if stage is Tone else {"level": 0.3} if stage is OutputStage else {}
    stereo, mono = stage(44_100, **knob), [stage(44_100, **knob) for _ in range(2)]
    stereo.reset(2)
    y = np.empty_like(x)
    expected = np.empty_like(x)
    for start, stop in ((0, 1000), (1000, 2000), (2000, 3000)):
        if start == 1000 and knob:  # a glide over the second block
            name = next(iter(knob))
            for p in (stereo, *mono):
                setattr(p, name, 0.1)
        stereo.process(x[:, start:stop], y[:, start:stop])
        for ch, p in enumerate(mono):
            p.process(x[ch, start:stop], expected[ch, start:stop])
    assert np.max(np.abs(y)) > 0.5
    np.testing.assert_array_equal(y, expected)
