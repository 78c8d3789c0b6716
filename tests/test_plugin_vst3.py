"""The VST3 plugins (`klon export plugin`) in a real host, pedalboard: they sound as the Python
pedal does, at the host's rate, with the latency the host compensates, streamed with knob
moves, and their state survives a round trip. Engine switches and bypass do not click.
(pedalboard hosts only as many outputs as inputs: the mono-to-stereo layout is tested in the
CLAP and LV2 hosts.)"""
import json

import numpy as np
import pedalboard  # the plugins' extra, which the test command installs (scripts/setup --plugins)
import pytest
from conftest import built_plugins, di_clip, run_klon, sine

from klon import Centaur

RATES = (44_100, 48_000, 96_000)
KNOBS = ((0.0, 0.5, 0.5), (0.7, 0.4, 0.6), (1.0, 0.8, 0.3))  # gain, treble, level
ENGINES = ("circuit", "neural")
TOLERANCE = 1e-5  # of the reference's peak


@pytest.fixture(scope="module")
def plugins(tmp_path_factory):
    return built_plugins(tmp_path_factory)


@pytest.fixture(scope="module")
def guitar():
    return di_clip("sample0")[:20_000].astype(np.float32)


def impulse(rate):
    """0.1 V for one sample after 100 zeros, then 0.5 s of silence: the tail sinks through the
    subnormal range, where a host's flush-to-zero would change the output."""
    x = np.zeros(100 + rate // 2, np.float32)
    x[100] = 0.1
    return x


def load(plugins, layout="klon_mono", engine="circuit", knobs=(0.5, 0.5, 0.5)):
    plugin = pedalboard.load_plugin(str(plugins / f"{layout}.vst3"))
    plugin.gain, plugin.treble, plugin.level = knobs
    plugin.engine = engine
    return plugin


def relative_error(y, reference):
    return float(np.max(np.abs(y - reference)) / np.max(np.abs(reference)))


def test_the_parameters_are_the_pedal_s_by_name(plugins):
    plugin = pedalboard.load_plugin(str(plugins / "klon_stereo.vst3"))
    for name in ("gain", "treble", "level", "engine", "bypass"):
        assert name in plugin.parameters
    assert plugin.gain == pytest.approx(0.5) and plugin.engine == "circuit"
    assert plugin.parameters["engine"].valid_values == ["circuit", "neural"]
    assert not plugin.bypass


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("knobs", KNOBS)
def test_the_plugin_sounds_as_the_python_pedal(plugins, guitar, rate, engine, knobs):
    """Whole signals, the host compensating the reported latency (a wrong latency would shift
    every sample): a guitar clip and an impulse, both engines, three knob settings."""
    plugin = load(plugins, engine=engine, knobs=knobs)
    for x in (guitar, impulse(rate)):
        reference = Centaur(rate, *knobs, engine=engine)(x)
        y = plugin(x[None], rate)[0]
        assert relative_error(y, reference) <= TOLERANCE


@pytest.mark.parametrize("engine", ENGINES)
def test_stereo_channels_are_two_pedals(plugins, guitar, engine):
    x = np.stack([guitar, 0.5 * guitar[::-1]])
    plugin = load(plugins, "klon_stereo", engine, (0.7, 0.4, 0.6))
    y = plugin(x, 48_000)
    reference = Centaur(48_000, 0.7, 0.4, 0.6, engine=engine)(x)
    assert y.shape == x.shape and relative_error(y, reference) <= TOLERANCE


@pytest.mark.parametrize("engine", ENGINES)
def test_streamed_in_chunks_with_knob_moves(plugins, guitar, engine):
    """Chunks of different sizes, the knobs moved between chunks: they glide as the Python
    pedal's do when set between blocks. (The first chunk is the longest: pedalboard re-activates
    a plugin, as a DAW does on a buffer-size change, when a longer one comes.)"""
    rate, cuts = 48_000, (0, 6_000, 6_512, 9_000, 14_000, guitar.size)
    moves = {6_000: dict(gain=0.9), 9_000: dict(treble=0.1, level=0.8), 14_000: dict(gain=0.2)}
    plugin = load(plugins, engine=engine, knobs=(0.3, 0.5, 0.5))
    plugin.reset()
    pedal = Centaur(rate, 0.3, 0.5, 0.5, engine=engine)
    out, ref = [], []
    for start, stop in zip(cuts, cuts[1:], strict=False):
        for knob, value in moves.get(start, {}).items():
            setattr(plugin, knob, value)
            setattr(pedal, knob, value)
        out.append(plugin.process(guitar[None, start:stop], rate, reset=False)[0])
        ref.append(pedal.process(guitar[start:stop]))
    y, reference = np.concatenate(out), np.concatenate(ref)[pedal.latency:]
    # the host holds back the plugin's latency: what came out is the pedal's, sample for sample
    assert y.size >= guitar.size - 200
    assert relative_error(y, reference[:y.size]) <= TOLERANCE


def test_the_state_survives_a_round_trip(plugins, guitar):
    plugin = load(plugins, engine="neural", knobs=(0.8, 0.2, 0.7))
    plugin(guitar[None, :512], 44_100)  # the host hands the plugin its parameters as it plays
    state = plugin.raw_state
    fresh = pedalboard.load_plugin(str(plugins / "klon_mono.vst3"))
    fresh.raw_state = state
    assert (fresh.gain, fresh.treble, fresh.level) == pytest.approx((0.8, 0.2, 0.7))
    assert fresh.engine == "neural"
    assert np.array_equal(fresh(guitar[None], 44_100), plugin(guitar[None], 44_100))


def _max_step(y):
    return float(np.max(np.abs(np.diff(y))))


@pytest.mark.parametrize("control", ["engine", "bypass"])
def test_switching_engine_or_bypass_while_playing_does_not_click(plugins, control):
    """A 220 Hz note at 0.3 V, switched in the middle: no sample-to-sample step larger than
    the largest either side makes alone (a jump between two signals, or a cold start, would
    be)."""
    rate = 44_100
    x = sine(220.0, 1.0, 0.3, rate)
    sides = {"engine": ("circuit", "neural"), "bypass": (False, True)}[control]
    steady = []
    for value in sides:
        plugin = load(plugins, knobs=(0.7, 0.5, 0.5))
        setattr(plugin, control, value)
        steady.append(_max_step(plugin(x[None], rate)[0][rate // 4:]))
    plugin = load(plugins, knobs=(0.7, 0.5, 0.5))
    setattr(plugin, control, sides[0])
    plugin.reset()
    half = rate // 2
    first = plugin.process(x[None, :half], rate, reset=False)[0]
    setattr(plugin, control, sides[1])
    second = plugin.process(x[None, half:], rate, reset=False)[0]
    y = np.concatenate([first, second])
    assert _max_step(y[rate // 4:]) <= 1.05 * max(steady)
    # and the switch happened: the end is the other side's sound
    alone = load(plugins, knobs=(0.7, 0.5, 0.5))
    setattr(alone, control, sides[1])
    end = alone(x[None], rate)[0][:y.size][-rate // 8:]
    assert relative_error(y[-rate // 8:], end) < 1e-3


def test_klon_bench_times_the_plugins_beside_the_seed(plugins, tmp_path):
    """The seed's benchmark with the plugins: pedalboard calls process block by block."""
    result = run_klon("bench", "--engines", "vst3-circuit,vst3-neural", "--plugins", plugins,
                      "--seconds", "0.5", "--blocks", "8,4096", "--repeats", "1", "--json",
                      "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert {(r["engine"], r["block_size"]) for r in records} == {
        (e, b) for e in ("vst3-circuit", "vst3-neural") for b in (8, 4096)}
    assert all(0 < r["seconds_per_second"]["median"] < 10 for r in records)
    assert "seed/vst3-circuit" in (tmp_path / "bench.md").read_text()


@pytest.mark.parametrize("engine", ENGINES)
def test_nan_and_inf_from_the_host_are_silence_to_the_pedal(plugins, guitar, engine):
    x = guitar.copy()
    x[[500, 501, 7_000]] = np.nan, np.inf, -np.inf
    y = load(plugins, engine=engine, knobs=(0.7, 0.4, 0.6))(x[None], 44_100)[0]
    silenced = np.where(np.isfinite(x), x, 0.0).astype(np.float32)
    reference = Centaur(44_100, 0.7, 0.4, 0.6, engine=engine)(silenced)
    assert np.all(np.isfinite(y)) and relative_error(y, reference) <= TOLERANCE
