"""The CLAP plugins (`klon export plugin`) in a CLAP host of our own: tests/clap_host.c, built
here with gcc against the CLAP headers DPF bundles and driven through ctypes. The plugins load
with the pedal's parameters and the latency of the slower engine; after that latency they sound
as the Python pedal does at 44.1, 48 and 96 kHz, in any block size; knob moves glide as the
Python pedal's do; the state survives a round trip; and the audio callback allocates nothing
(tests/malloc_counter.c, preloaded) nor leaves flush-to-zero switched on in the host.
Needs gcc and DPF (scripts/setup --plugins): missing tools fail, they do not skip."""
import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import built_plugins, di_clip

from klon import Centaur
from klon.export.plugin.build import DPF_PATH

HERE = Path(__file__).resolve().parent
CLAP_HEADERS = DPF_PATH / "distrho" / "src"  # clap/entry.h, clap/ext/*.h (CLAP 1.1)
CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-shared", "-fPIC")

RATES = (44_100, 48_000, 96_000)
ENGINES = ("circuit", "neural")
LAYOUTS = {"klon_mono": (1, 1), "klon_mono_stereo": (1, 2), "klon_stereo": (2, 2)}
NAMES = ("Gain", "Treble", "Level", "Engine", "Bypass")
KNOBS = ((0.0, 0.5, 0.5), (0.7, 0.4, 0.6), (1.0, 0.8, 0.3))  # gain, treble, level
TOLERANCE = 1e-5  # of the reference's peak
FTZ_DAZ = 0x8040  # MXCSR: flush-to-zero (bit 15), denormals-are-zero (bit 6)
PARAM_IS_STEPPED, PARAM_IS_BYPASS = 1 << 0, 1 << 4  # clap/ext/params.h

_f32 = np.ctypeslib.ndpointer(np.float32, flags="C_CONTIGUOUS")
_u32 = np.ctypeslib.ndpointer(np.uint32, flags="C_CONTIGUOUS")
_f64 = np.ctypeslib.ndpointer(np.float64, flags="C_CONTIGUOUS")
_p, _u, _d = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_double
_pu, _pd = ctypes.POINTER(ctypes.c_uint32), ctypes.POINTER(ctypes.c_double)
SIGNATURES = {  # name: (result, arguments), as tests/clap_host.c declares them
    "ch_error": (ctypes.c_char_p, []),
    "ch_mxcsr": (ctypes.c_uint, []),
    "ch_allocations": (ctypes.c_long, []),
    "ch_counter_probe": (ctypes.c_long, []),
    "ch_load": (_p, [ctypes.c_char_p]),
    "ch_plugin_count": (_u, [_p]),
    "ch_plugin_id": (ctypes.c_char_p, [_p, _u]),
    "ch_create": (_p, [_p, ctypes.c_char_p]),
    "ch_destroy": (None, [_p]),
    "ch_asked": (ctypes.c_char_p, [_p]),
    "ch_counters": (None, [_p, ctypes.POINTER(ctypes.c_int)]),
    "ch_channels": (_u, [_p, ctypes.c_int]),
    "ch_param_count": (_u, [_p]),
    "ch_param_info": (ctypes.c_int, [_p, _u, _pu, ctypes.c_char_p, _pd, _pd, _pd, _pu]),
    "ch_param_value": (ctypes.c_int, [_p, _u, _pd]),
    "ch_params_flush": (ctypes.c_int, [_p, _u32, _f64, _u]),
    "ch_activate": (ctypes.c_int, [_p, _d, _u, _u]),
    "ch_deactivate": (None, [_p]),
    "ch_latency": (ctypes.c_int, [_p]),
    "ch_run": (ctypes.c_int, [_p, _f32, _f32, _u, _u32, _u, _u32, _u32, _f64, _u]),
    "ch_state_save": (ctypes.c_int64, [_p, ctypes.c_char_p, ctypes.c_int64]),
    "ch_state_load": (ctypes.c_int, [_p, ctypes.c_char_p, ctypes.c_int64, ctypes.c_int64]),
}


def build_host(folder: Path) -> tuple[Path, Path]:
    """tests/clap_host.c and tests/malloc_counter.c as shared libraries in folder."""
    host, counter = folder / "clap_host.so", folder / "malloc_counter.so"
    for source, target, includes in ((HERE / "clap_host.c", host, [f"-I{CLAP_HEADERS}"]),
                                     (HERE / "malloc_counter.c", counter, [])):
        result = subprocess.run(["gcc", *CFLAGS, *includes, str(source), "-o", str(target),
                                 "-ldl"], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    return host, counter


class Host:
    """The host library through ctypes; each .clap is loaded once (clap_entry.init)."""

    def __init__(self, path: Path):
        self.lib = ctypes.CDLL(str(path))
        for name, (result, arguments) in SIGNATURES.items():
            function = getattr(self.lib, name)
            function.restype, function.argtypes = result, arguments
        self.modules = {}

    def mxcsr(self) -> int:
        return self.lib.ch_mxcsr()

    def module(self, path: Path) -> int:
        if path not in self.modules:
            handle = self.lib.ch_load(str(path).encode())
            assert handle, self.lib.ch_error().decode()
            self.modules[path] = handle
        return self.modules[path]

    def plugin(self, plugins: Path, layout: str = "klon_mono") -> "Plugin":
        return Plugin(self, self.module(plugins / f"{layout}.clap"), f"klon.{layout}")


class Plugin:
    """One instance of a plugin: parameters by name, audio as channels x frames float32."""

    def __init__(self, host: Host, module: int, plugin_id: str):
        self.lib = host.lib
        ids = [self.lib.ch_plugin_id(module, i).decode()
               for i in range(self.lib.ch_plugin_count(module))]
        assert ids == [plugin_id]
        self.handle = self.lib.ch_create(module, plugin_id.encode())
        assert self.handle, self.lib.ch_error().decode()
        self.params = {}
        for index in range(self.lib.ch_param_count(self.handle)):
            pid, flags = ctypes.c_uint32(), ctypes.c_uint32()
            low, high, default = ctypes.c_double(), ctypes.c_double(), ctypes.c_double()
            name = ctypes.create_string_buffer(256)
            assert self.lib.ch_param_info(self.handle, index, pid, name, low, high, default,
                                          flags) == 0
            self.params[name.value.decode()] = (pid.value, low.value, high.value,
                                                default.value, flags.value)

    def close(self) -> None:
        self.lib.ch_destroy(self.handle)

    @property
    def asked(self) -> list[str]:
        return self.lib.ch_asked(self.handle).decode().split(",")

    @property
    def channels(self) -> tuple[int, int]:
        return self.lib.ch_channels(self.handle, 1), self.lib.ch_channels(self.handle, 0)

    @property
    def latency(self) -> int:
        return self.lib.ch_latency(self.handle)

    @property
    def restarts(self) -> int:
        """How often the plugin asked the host for a restart (clap_host.request_restart)."""
        counters = (ctypes.c_int * 4)()
        self.lib.ch_counters(self.handle, counters)
        return counters[0]

    def value(self, name: str) -> float:
        value = ctypes.c_double()
        assert self.lib.ch_param_value(self.handle, self.params[name][0], value) == 0
        return value.value

    def values(self) -> dict[str, float]:
        return {name: self.value(name) for name in self.params}

    def flush(self, **values: float) -> None:
        """Parameter values while not processing (clap.params flush)."""
        ids = np.array([self.params[name.capitalize()][0] for name in values], np.uint32)
        assert self.lib.ch_params_flush(self.handle, ids, np.array(list(values.values()),
                                                                   np.float64), len(ids)) == 0

    def activate(self, rate: float, max_frames: int = 4096) -> int:
        assert self.lib.ch_activate(self.handle, rate, 1, max_frames) == 0
        return self.latency

    def run(self, x: np.ndarray, sizes=(512,), events=()) -> np.ndarray:
        """x (inputs x frames) in blocks of `sizes` (cycling); events (frame, name, value)
        arrive at the start of the block at that frame (a block ends early there)."""
        x = np.ascontiguousarray(x, np.float32)
        out = np.zeros((self.channels[1], x.shape[1]), np.float32)
        events = sorted(events, key=lambda event: event[0])
        at = np.array([frame for frame, _, _ in events], np.uint32)
        ids = np.array([self.params[name][0] for _, name, _ in events], np.uint32)
        values = np.array([value for _, _, value in events], np.float64)
        assert x.shape[0] == self.channels[0]
        assert self.lib.ch_run(self.handle, x, out, x.shape[1], np.array(sizes, np.uint32),
                               len(sizes), at, ids, values, len(events)) == 0
        return out

    def save(self) -> bytes:
        buffer = ctypes.create_string_buffer(1 << 16)
        size = self.lib.ch_state_save(self.handle, buffer, len(buffer))
        assert 0 < size <= len(buffer)
        return buffer.raw[:size]

    def load(self, state: bytes, chunk: int = 0) -> None:
        assert self.lib.ch_state_load(self.handle, state, len(state), chunk) == 0


def settings(knobs, engine: str) -> list[tuple[int, str, float]]:
    """Param events at frame 0: the knobs and the engine, before any audio."""
    values = (*knobs, ENGINES.index(engine))
    return [(0, name, value) for name, value in zip(NAMES[:4], values, strict=True)]


def padded(x: np.ndarray, latency: int) -> np.ndarray:
    """x (1-D or channels x frames) and `latency` zeros after it, channels x frames."""
    x = np.atleast_2d(x).astype(np.float32)
    return np.concatenate([x, np.zeros((x.shape[0], latency), np.float32)], axis=1)


def relative_error(y, reference) -> float:
    y, reference = np.asarray(y, np.float64), np.asarray(reference, np.float64)
    return float(np.max(np.abs(y - reference)) / np.max(np.abs(reference)))


def plugin_latency(rate: float) -> int:
    return max(Centaur(rate, engine=engine).latency for engine in ENGINES)


def impulse(rate: int, seconds: float) -> np.ndarray:
    """0.1 V in one sample after 10 ms of zeros, then silence."""
    x = np.zeros(int(seconds * rate), np.float32)
    x[rate // 100] = 0.1
    return x


@pytest.fixture(scope="module")
def plugins(tmp_path_factory):
    return built_plugins(tmp_path_factory)


@pytest.fixture(scope="module")
def libraries(tmp_path_factory):
    return build_host(tmp_path_factory.mktemp("clap-host"))


@pytest.fixture(scope="module")
def host(libraries):
    return Host(libraries[0])


@pytest.fixture(scope="module")
def guitar():
    return di_clip("sample0")[:17_640].astype(np.float32)  # 0.4 s at 44.1 kHz


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_loads_with_the_pedal_s_parameters_and_latency(plugins, host, layout):
    before = host.mxcsr()
    plugin = host.plugin(plugins, layout)
    assert host.mxcsr() & FTZ_DAZ == before & FTZ_DAZ  # (this process; see the last test)
    assert "clap.latency" in plugin.asked  # DPF calls it unchecked: the host must have it
    assert plugin.channels == LAYOUTS[layout]
    assert list(plugin.params) == list(NAMES)
    assert [plugin.params[name][0] for name in NAMES] == [0, 1, 2, 3, 4]
    for name in NAMES[:3]:
        assert plugin.params[name][1:4] == (0.0, 1.0, 0.5)
        assert plugin.value(name) == 0.5
    assert plugin.params["Engine"][1:4] == (0.0, 1.0, 0.0)
    assert plugin.params["Engine"][4] & PARAM_IS_STEPPED
    assert plugin.params["Bypass"][1:4] == (0.0, 1.0, 0.0)
    assert plugin.params["Bypass"][4] & PARAM_IS_BYPASS
    silence = np.zeros((LAYOUTS[layout][0], 256), np.float32)
    for rate in RATES:
        restarts = plugin.restarts
        latency = plugin.activate(rate)
        assert latency == plugin_latency(rate)
        # DPF asks for a restart in the first block after an activation that changed the
        # latency (it last saw 0 at creation); after that restart, nothing changes
        plugin.run(silence)
        assert plugin.restarts - restarts <= 1
        assert plugin.activate(rate) == latency
        plugin.run(silence)
        assert plugin.restarts - restarts <= 1
    plugin.close()


@pytest.mark.parametrize("rate", [16_000, 384_000])
def test_a_rate_outside_the_range_passes_audio_through_and_says_so(plugins, host, guitar, rate,
                                                                   capfd):
    plugin = host.plugin(plugins)
    assert plugin.activate(rate) == 0
    y = plugin.run(guitar[None], events=settings(KNOBS[1], "circuit"))
    plugin.close()
    assert np.array_equal(y[0], guitar)
    assert f"klon: {rate} Hz is not a rate the pedal runs at" in capfd.readouterr().err


CASES = [(44_100, engine, knobs) for engine in ENGINES for knobs in KNOBS] \
    + [(rate, engine, knobs) for rate in RATES[1:] for engine in ENGINES
       for knobs in (KNOBS[0], KNOBS[2])] \
    + [(rate, engine, KNOBS[1]) for rate in (22_050, 192_000) for engine in ENGINES]  # the ends


@pytest.mark.parametrize("rate, engine, knobs", CASES)
def test_a_guitar_clip_sounds_as_the_python_pedal(plugins, host, guitar, rate, engine, knobs):
    """Knobs and engine set by events in the first block (they take effect at once); the
    output after the reported latency is the latency-free Python pedal's."""
    plugin = host.plugin(plugins)
    latency = plugin.activate(rate)
    y = plugin.run(padded(guitar, latency), events=settings(knobs, engine))[0, latency:]
    plugin.close()
    reference = Centaur(rate, *knobs, engine=engine)(guitar)
    assert relative_error(y, reference) <= TOLERANCE


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("engine", ENGINES)
def test_an_impulse_tail_sounds_as_the_python_pedal(plugins, host, rate, engine):
    """0.1 V for one sample, then silence: 8 s for the circuit, whose tail sinks below 1e-30
    in the plugin (through the range where flush-to-zero and denormals differ; Python's sinks
    more slowly, 1e-17 after 6 s), 3 s for the neural pedal, whose tail settles within 2 s at
    a constant (1e-21..1e-8 V), in Python as in the plugin."""
    x = impulse(rate, 8.0 if engine == "circuit" else 3.0)
    plugin = host.plugin(plugins)
    latency = plugin.activate(rate)
    y = plugin.run(padded(x, latency), sizes=(4096,),
                   events=settings(KNOBS[1], engine))[0, latency:]
    plugin.close()
    reference = Centaur(rate, *KNOBS[1], engine=engine)(x)
    assert relative_error(y, reference) <= TOLERANCE
    if engine == "circuit":
        assert np.max(np.abs(y[-rate // 10:])) < 1e-30


@pytest.mark.parametrize("layout", ["klon_mono_stereo", "klon_stereo"])
def test_the_stereo_layouts_are_pedals_per_channel(plugins, host, guitar, layout):
    x = np.stack([guitar, 0.5 * guitar[::-1]])[:LAYOUTS[layout][0]]
    plugin = host.plugin(plugins, layout)
    latency = plugin.activate(48_000)
    y = plugin.run(padded(x, latency), events=settings(KNOBS[1], "neural"))[:, latency:]
    plugin.close()
    reference = Centaur(48_000, *KNOBS[1], engine="neural")(x)
    assert y.shape == (2, len(guitar))
    for channel in range(2):
        assert relative_error(y[channel], reference[channel % len(x)]) <= TOLERANCE


BLOCKS = {"1": (1,), "7": (7,), "64": (64,), "4096": (4096,),
          "mixed": (1, 300, 7, 4096, 64, 2000, 13, 256, 255, 257)}


@pytest.mark.parametrize("rate, engine", [(44_100, "neural"), (96_000, "circuit"),
                                          (96_000, "neural")])
def test_every_block_size_gives_the_same_output(plugins, host, guitar, rate, engine):
    """Bit for bit the same in blocks of 1, 7, 64, 4096 frames and a mix, and the Python
    pedal's (the 96 kHz neural pedal runs inside a rate converter; the plugin's own pieces are
    256 frames)."""
    plugin = host.plugin(plugins)
    outputs = {}
    for name, sizes in BLOCKS.items():
        latency = plugin.activate(rate)
        outputs[name] = plugin.run(padded(guitar, latency), sizes,
                                   settings(KNOBS[1], engine))[0, latency:]
    plugin.close()
    for name, y in outputs.items():
        assert np.array_equal(y, outputs["4096"]), name
    assert relative_error(outputs["7"], Centaur(rate, *KNOBS[1], engine=engine)(guitar)) \
        <= TOLERANCE


def python_stream(x, rate, engine, knobs, changes, block=512):
    """The Python pedal streamed in blocks, knobs set between blocks at the changes' frames;
    the output with the engine's latency in it."""
    pedal = Centaur(rate, *knobs, engine=engine)
    out, position = [], 0
    for frame, name, value in [*changes, (len(x), None, None)]:
        while position < frame:
            n = min(block, frame - position)
            out.append(pedal.process(x[position:position + n]))
            position += n
        if name is not None:
            setattr(pedal, name.lower(), value)
    return np.concatenate(out), pedal.latency


@pytest.mark.parametrize("rate, engine", [(44_100, "circuit"), (44_100, "neural"),
                                          (96_000, "circuit"), (96_000, "neural")])
def test_knob_moves_glide_as_the_python_pedal_s(plugins, host, guitar, rate, engine):
    """Gain 0.2 -> 0.9 at 0.1 s, and Treble and Level moved mid-glide 20 ms later: the
    plugin (latency L) and the Python pedal streamed (its engine's latency) agree after
    their latencies."""
    first = int(0.1 * rate)
    changes = [(first, "Gain", 0.9), (first + rate // 50, "Treble", 0.2),
               (first + rate // 50, "Level", 0.8)]
    knobs = (0.2, 0.5, 0.5)
    plugin = host.plugin(plugins)
    latency = plugin.activate(rate)
    y = plugin.run(padded(guitar, latency), events=settings(knobs, engine) + changes)
    plugin.close()
    own = Centaur(rate, engine=engine).latency
    stream, streamed_latency = python_stream(padded(guitar, own)[0], rate, engine, knobs,
                                             changes)
    assert streamed_latency == own
    n = len(guitar)
    y, reference = y[0, latency:latency + n], stream[own:own + n]
    assert relative_error(y, reference) <= TOLERANCE
    # the move is heard: a plugin that ignored it would be far off
    still = Centaur(rate, *knobs, engine=engine)(guitar)
    assert relative_error(still, reference) > 0.1


def test_the_state_survives_a_round_trip(plugins, host, guitar):
    """Knobs and engine set, a knob moved while playing, the state saved; a fresh instance
    loads it (handed over 100 bytes a read) before activation and has the same values and
    sound; as does one given the values through clap.params flush."""
    knobs = (0.3, 0.25, 0.65)
    played = host.plugin(plugins)
    latency = played.activate(48_000)
    played.run(padded(guitar, latency), events=[*settings((0.8, 0.25, 0.65), "neural"),
                                                (4000, "Gain", knobs[0])])
    state = played.save()
    loaded = host.plugin(plugins)
    loaded.load(state, chunk=100)
    assert loaded.values() == played.values()
    assert loaded.values() == pytest.approx(dict(zip(NAMES, (*knobs, 1.0, 0.0), strict=True)),
                                            abs=1e-7)
    flushed = host.plugin(plugins)
    flushed.flush(gain=knobs[0], treble=knobs[1], level=knobs[2], engine=1.0)
    assert flushed.values() == loaded.values()
    outputs = []
    for plugin in (loaded, flushed):
        assert plugin.activate(48_000) == latency
        outputs.append(plugin.run(padded(guitar, latency))[0, latency:])
        assert plugin.save() == state
    for plugin in (played, loaded, flushed):
        plugin.close()
    assert np.array_equal(outputs[0], outputs[1])
    assert relative_error(outputs[0], Centaur(48_000, *knobs, engine="neural")(guitar)) \
        <= TOLERANCE


def callback_check(host_library: str, plugins: str) -> dict:
    """Run in a fresh process with tests/malloc_counter.c preloaded: each layout at 48 kHz
    for 2 s in blocks of 64 and odd sizes, with a knob move, an engine switch and back, and
    bypass on and off. Heap calls inside `process` are counted; MXCSR is read before the first
    plugin loads and after each step."""
    host = Host(Path(host_library))
    report = {"probe": host.lib.ch_counter_probe(), "mxcsr": [host.mxcsr()], "layouts": {}}
    rate, n = 48_000, 96_000
    for layout, (inputs, _) in LAYOUTS.items():
        plugin = host.plugin(Path(plugins), layout)
        report["mxcsr"].append(host.mxcsr())
        latency = plugin.activate(rate, 4096)
        report["mxcsr"].append(host.mxcsr())
        x = (0.3 * np.random.default_rng(0).standard_normal((inputs, n))).astype(np.float32)
        events = [(0, "Gain", 0.6), (9_600, "Gain", 0.9), (19_200, "Engine", 1.0),
                  (38_400, "Engine", 0.0), (57_600, "Bypass", 1.0), (86_400, "Bypass", 0.0)]
        before = host.lib.ch_allocations()
        y = plugin.run(x, (64, 64, 1, 300, 64, 4096, 7), events)
        allocations = host.lib.ch_allocations() - before
        report["mxcsr"].append(host.mxcsr())
        # bypassed (from 30 ms after the event to the event off): the input, delayed
        bypassed = slice(57_600 + 1_440 + latency, 86_400)
        report["layouts"][layout] = {
            "allocations": allocations, "finite": bool(np.all(np.isfinite(y))),
            "bypass_exact": all(np.array_equal(y[c, bypassed], x[c % inputs, 57_600 + 1_440:
                                                                  86_400 - latency])
                                for c in range(len(y))),
            "restarts": plugin.restarts}
        plugin.close()
        report["mxcsr"].append(host.mxcsr())
    return report


def test_the_audio_callback_allocates_nothing_nor_sets_flush_to_zero(plugins, libraries):
    """In a fresh process (the plugins' load-time effects happen there first), malloc and
    friends preloaded: nothing is allocated in `process`, whatever the blocks and events;
    FTZ/DAZ stay as the host had them (DPF's -ffast-math would switch them on at load)."""
    host_library, counter = libraries
    code = (f"import json, sys; sys.path.insert(0, {str(HERE)!r}); "
            f"from test_plugin_clap import callback_check; "
            f"print(json.dumps(callback_check({str(host_library)!r}, {str(plugins)!r})))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "LD_PRELOAD": str(counter)}, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["probe"] == 2  # the counter sees one malloc and one free
    first = report["mxcsr"][0]
    assert first & FTZ_DAZ == 0
    assert all(mxcsr & FTZ_DAZ == first & FTZ_DAZ for mxcsr in report["mxcsr"])
    for layout, figures in report["layouts"].items():
        assert figures["allocations"] == 0, layout
        assert figures["finite"] and figures["bypass_exact"], layout
        assert figures["restarts"] <= 1, layout  # DPF's first-block latency report
