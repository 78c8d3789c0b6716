"""The LV2 plugins and the JACK programs of `klon export plugin`, in real hosts, headless:

- lv2_validate: every layout's bundle, 0 errors.
- lv2file (Debian 0.95): offline renders at 44.1, 48 and 96 kHz, both engines, several knob
  settings, a guitar clip and an impulse; after the reported latency the output is the Python
  pedal (`klon.Centaur`, latency-free) within 1e-5 of its peak. lv2file 0.95 cannot load these
  plugins by itself (see LV2FILE_FIX): a small LD_PRELOAD shim compiled here hands the plugin
  a worker feature where lv2file hands it an uninitialised one; lv2file does the rest.
- jalv on a JACK server with the dummy driver, in freewheel mode: the same equality streamed
  through JACK, and the latency jalv reads from the plugin's latency port.
- the JACK program (DPF's standalone) on the same server: a sine through it is the Python
  circuit pedal at its default knobs, delayed by the latency.

Needs jackd, jalv, lv2file, lv2_validate (lv2-dev) and gcc (`scripts/setup --plugins`); the JACK
tests skip only where jackd is there but cannot start a server at all.
"""
import functools
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import built_plugins, di_clip, sine

import klon
from klon.export.plugin import LAYOUTS
from klon.live import loopback

URI = "https://klon.invalid/plugins/"
RATES = (44_100, 48_000, 96_000)
KNOBS = ((0.0, 0.5, 0.5), (0.7, 0.4, 0.6), (1.0, 0.8, 0.3))  # gain, treble, level
ENGINES = ("circuit", "neural")
TOLERANCE = 1e-5  # of the reference's peak
CLIP_SECONDS, IMPULSE_SECONDS = 0.4, 0.3
IMPULSE_AT, IMPULSE_VOLTS = 100, 0.1
TIMEOUT = 60  # seconds for any one tool, start-up or render
JACK_RATE, JACK_BLOCK = 48_000, 256

# Debian's lv2file 0.95 gives a plugin that has the worker interface (DPF's plugins with state,
# as ours are: CLAP saves its state only so) a pointer to an LV2_Feature it never fills in where
# the worker#schedule feature belongs: its URI is whatever was on the stack. DPF compares every
# feature's URI (strcmp) and the host crashes (SIGSEGV in lv2_instantiate). This shim, loaded
# into lv2file with LD_PRELOAD, wraps lilv_plugin_instantiate: it keeps the features whose URI
# points into a loaded object (lv2file's own are string constants of its binary; a stack garbage
# pointer is not) and adds a worker#schedule that refuses work (nothing schedules any: the
# plugin has no state of its own and no UI). Instantiation, ports, controls, run and the files
# are lv2file's.
LV2FILE_FIX = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <lv2/core/lv2.h>
#include <lv2/worker/worker.h>

typedef void *(*instantiate_fn)(const void *, double, const LV2_Feature *const *);

static LV2_Worker_Status refuse(LV2_Worker_Schedule_Handle h, uint32_t size, const void *data)
{
    (void)h; (void)size; (void)data;
    return LV2_WORKER_ERR_UNKNOWN;
}

static LV2_Worker_Schedule schedule = {NULL, refuse};
static LV2_Feature worker = {LV2_WORKER__schedule, &schedule};

void *lilv_plugin_instantiate(const void *plugin, double rate,
                              const LV2_Feature *const *features)
{
    instantiate_fn real = (instantiate_fn)dlsym(RTLD_NEXT, "lilv_plugin_instantiate");
    const LV2_Feature *kept[64];
    size_t n = 0;
    Dl_info info;
    for (size_t i = 0; features && features[i] && n < 62; ++i)
        if (dladdr(features[i]->URI, &info))
            kept[n++] = features[i];
    kept[n++] = &worker;
    kept[n] = NULL;
    return real(plugin, rate, kept);
}
"""


@functools.cache
def latency(rate: int) -> int:
    """The plugin's latency at a rate: the larger of the two engines'."""
    return max(klon.Centaur(rate, engine=engine).latency for engine in ENGINES)


def python_pedal(x: np.ndarray, rate: int, knobs=(0.5, 0.5, 0.5), engine="circuit"):
    """The Python pedal on one channel (float32 samples, as the plugin hears them)."""
    y = klon.Centaur(rate, *knobs, engine=engine)(np.asarray(x, dtype=np.float32)
                                                  .astype(np.float64))
    return np.asarray(y, dtype=np.float64).reshape(-1)


def relative_error(y: np.ndarray, reference: np.ndarray) -> float:
    return float(np.max(np.abs(y - reference)) / np.max(np.abs(reference)))


def clip(rate: int) -> np.ndarray:
    """A guitar DI clip (44.1 kHz data), its samples taken as a signal at `rate`."""
    return di_clip("sample0")[:int(CLIP_SECONDS * rate)].astype(np.float32)


def impulse(rate: int) -> np.ndarray:
    """One 0.1 V sample after some zeros, then silence: a filter tail that decays into the
    subnormals, where a host or build that flushes them differs."""
    x = np.zeros(int(IMPULSE_SECONDS * rate), dtype=np.float32)
    x[IMPULSE_AT] = IMPULSE_VOLTS
    return x


@pytest.fixture(scope="module")
def plugins(tmp_path_factory) -> Path:
    return built_plugins(tmp_path_factory)


@pytest.fixture(scope="module")
def lv2_path(plugins, tmp_path_factory) -> Path:
    """A folder with only the LV2 bundles (LV2_PATH): the build folder holds the other
    formats too, which lilv would try to read as bundles."""
    folder = tmp_path_factory.mktemp("lv2")
    for layout in LAYOUTS:
        (folder / f"{layout}.lv2").symlink_to(plugins / f"{layout}.lv2")
    return folder


@pytest.fixture(scope="module")
def lv2file_fix(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("lv2file-fix")
    (folder / "fix.c").write_text(LV2FILE_FIX)
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror", "-o",
                    str(folder / "fix.so"), str(folder / "fix.c"), "-ldl"],
                   check=True, capture_output=True, timeout=TIMEOUT)
    return folder / "fix.so"


def lv2file(lv2_path: Path, layout: str, x: np.ndarray, rate: int, folder: Path,
            controls: dict[str, float], preload: Path | None) -> np.ndarray:
    """x (channels x frames, float32) through lv2file as a float WAV; the output
    channels x frames. `preload`: the shim, or None for lv2file as packaged."""
    source, result = folder / "in.wav", folder / "out.wav"
    sf.write(source, np.atleast_2d(x).T, rate, subtype="FLOAT")
    command = ["lv2file", "-i", str(source), "-o", str(result), "--ignore-clipping"]
    for name, value in controls.items():
        command += ["-p", f"{name}:{value:g}"]
    env = {**os.environ, "LV2_PATH": str(lv2_path)}
    if preload is not None:
        env["LD_PRELOAD"] = str(preload)
    run = subprocess.run([*command, URI + layout], env=env, capture_output=True, text=True,
                         timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    if run.returncode != 0:
        raise LV2FileFailed(run)
    y, got_rate = sf.read(result, dtype="float64", always_2d=True)
    assert got_rate == rate and sf.info(str(result)).subtype == "FLOAT"
    return y.T


class LV2FileFailed(AssertionError):
    def __init__(self, run: subprocess.CompletedProcess):
        super().__init__(f"lv2file exited with {run.returncode}: {run.stderr[-2000:]}")
        self.run = run


def knob_controls(knobs, engine: str) -> dict[str, float]:
    return {"gain": knobs[0], "treble": knobs[1], "level": knobs[2],
            "engine": float(ENGINES.index(engine))}


# ---- lv2_validate --------------------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
def test_lv2_validate_finds_no_errors(plugins, layout):
    bundle = plugins / f"{layout}.lv2"
    files = sorted(bundle.glob("*.ttl"))
    assert {f.name for f in files} == {"manifest.ttl", f"{layout}_dsp.ttl"}
    run = subprocess.run(["lv2_validate", *map(str, files)], capture_output=True, text=True,
                         timeout=TIMEOUT)
    text = run.stdout + run.stderr
    assert run.returncode == 0, text
    assert "Found 0 errors" in text and "warning" not in text.lower(), text


LV2 = "http://lv2plug.in/ns/lv2core#"
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
TRIPLE = re.compile(r'^(\S+) <([^>]+)> (<[^>]+>|_:\S+|"(?:[^"\\]|\\.)*"(?:\^\^<[^>]+>)?) \.$')


def ports(ttl: Path) -> dict[str, dict[str, set[str]]]:
    """The plugin's ports as sordi reads its TTL: symbol -> predicate -> values (IRIs without
    their brackets, literals without their quotes and type)."""
    run = subprocess.run(["sordi", str(ttl)], capture_output=True, text=True, timeout=TIMEOUT)
    assert run.returncode == 0, run.stderr
    nodes: dict[str, dict[str, set[str]]] = {}
    for line in run.stdout.splitlines():
        match = TRIPLE.match(line)
        assert match, line
        subject, predicate, value = match.groups()
        value = value[1:-1] if value.startswith("<") else value
        value = value[1:value.rindex('"')] if value.startswith('"') else value
        nodes.setdefault(subject, {}).setdefault(predicate, set()).add(value)
    found = {}
    for node in nodes.values():
        for port in node.get(LV2 + "port", ()):
            (symbol,) = nodes[port][LV2 + "symbol"]
            found[symbol] = nodes[port]
    return found


@pytest.mark.parametrize("layout, inputs, outputs",
                         [("klon_mono", 1, 1), ("klon_mono_stereo", 1, 2), ("klon_stereo", 2, 2)])
def test_ttl_ports(plugins, layout, inputs, outputs):
    """The ports hosts see: the audio of the layout, the three knobs, the engine, DPF's bypass
    as LV2's lv2:enabled port (1 plays the pedal, 0 bypasses) and the latency output."""
    found = ports(plugins / f"{layout}.lv2" / f"{layout}_dsp.ttl")
    audio = {s for s, p in found.items() if LV2 + "AudioPort" in p[RDF_TYPE]}
    assert audio == ({f"lv2_audio_in_{i + 1}" for i in range(inputs)}
                     | {f"lv2_audio_out_{i + 1}" for i in range(outputs)})
    controls = {s for s, p in found.items() if LV2 + "ControlPort" in p[RDF_TYPE]}
    assert controls == {"gain", "treble", "level", "engine", "lv2_enabled", "lv2_latency"}
    for knob in ("gain", "treble", "level"):
        port = found[knob]
        assert LV2 + "InputPort" in port[RDF_TYPE]
        assert (port[LV2 + "minimum"], port[LV2 + "maximum"], port[LV2 + "default"]) == (
            {"0"}, {"1"}, {"0.5"})
    engine = found["engine"]
    assert engine[LV2 + "default"] == {"0"} and LV2 + "enumeration" in engine[LV2 + "portProperty"]
    enabled = found["lv2_enabled"]
    assert LV2 + "InputPort" in enabled[RDF_TYPE]
    assert enabled[LV2 + "designation"] == {LV2 + "enabled"}
    assert enabled[LV2 + "default"] == {"1"} and LV2 + "toggled" in enabled[LV2 + "portProperty"]
    reported = found["lv2_latency"]
    assert LV2 + "OutputPort" in reported[RDF_TYPE]
    assert reported[LV2 + "designation"] == {LV2 + "latency"}
    assert LV2 + "reportsLatency" in reported[LV2 + "portProperty"]


def test_lv2_validate_catches_a_broken_bundle(plugins, tmp_path):
    """The validator does read the plugin's TTL: a port index that is not a number fails."""
    ttl = (plugins / "klon_mono.lv2" / "klon_mono_dsp.ttl").read_text()
    broken = tmp_path / "klon_mono_dsp.ttl"
    broken.write_text(ttl.replace("lv2:index 5 ;", 'lv2:index "five" ;'))
    assert broken.read_text() != ttl
    run = subprocess.run(["lv2_validate", str(broken)], capture_output=True, text=True,
                         timeout=TIMEOUT)
    assert run.returncode != 0 and "Found 1 errors" in run.stdout + run.stderr


# ---- lv2file -------------------------------------------------------------------------

def render_cases():
    """The clip at every rate with both engines and the middle knobs, the other knobs at
    44.1 kHz; the impulse at every rate with both engines and full Gain."""
    cases = [("clip", rate, KNOBS[1], engine) for rate in RATES for engine in ENGINES]
    cases += [("clip", 44_100, knobs, engine) for knobs in (KNOBS[0], KNOBS[2])
              for engine in ENGINES]
    cases += [("impulse", rate, KNOBS[2], engine) for rate in RATES for engine in ENGINES]
    return [pytest.param(*case, id=f"{case[0]}-{case[1]}-{case[3]}-"
                         + "-".join(f"{k:g}" for k in case[2])) for case in cases]


@pytest.mark.parametrize("signal_name, rate, knobs, engine", render_cases())
def test_lv2file_render_is_the_python_pedal(lv2_path, lv2file_fix, tmp_path, signal_name,
                                            rate, knobs, engine):
    x = clip(rate) if signal_name == "clip" else impulse(rate)
    lag = latency(rate)
    padded = np.concatenate([x, np.zeros(lag, dtype=np.float32)])
    y = lv2file(lv2_path, "klon_mono", padded, rate, tmp_path, knob_controls(knobs, engine),
                lv2file_fix)
    assert y.shape == (1, padded.size) and np.all(np.isfinite(y))
    reference = python_pedal(padded, rate, knobs, engine)[:x.size]
    assert np.max(np.abs(reference)) > 0.05
    assert relative_error(y[0, lag:], reference) <= TOLERANCE


def test_lv2file_stereo_layouts(lv2_path, lv2file_fix, tmp_path):
    """klon_stereo: each channel its own pedal (the right one fed another signal);
    klon_mono_stereo: the mono pedal on both outputs."""
    rate, knobs, engine = 48_000, KNOBS[1], "circuit"
    lag = latency(rate)
    left = clip(rate)
    right = (-0.5 * di_clip("sample1")[:left.size]).astype(np.float32)
    pad = np.zeros(lag, dtype=np.float32)
    x = np.stack([np.concatenate([left, pad]), np.concatenate([right, pad])])
    controls = knob_controls(knobs, engine)
    stereo = lv2file(lv2_path, "klon_stereo", x, rate, tmp_path, controls, lv2file_fix)
    assert stereo.shape == x.shape
    for channel in range(2):
        reference = python_pedal(x[channel], rate, knobs, engine)[:left.size]
        assert relative_error(stereo[channel, lag:], reference) <= TOLERANCE
    wide = lv2file(lv2_path, "klon_mono_stereo", x[:1], rate, tmp_path, controls, lv2file_fix)
    assert wide.shape == x.shape and np.array_equal(wide[0], wide[1])
    reference = python_pedal(x[0], rate, knobs, engine)[:left.size]
    assert relative_error(wide[0, lag:], reference) <= TOLERANCE


def test_lv2file_bypass_is_the_input_delayed_by_the_latency(lv2_path, lv2file_fix, tmp_path):
    """DPF's bypass is LV2's lv2:enabled port (symbol lv2_enabled, default 1): 0 bypasses."""
    rate = 96_000
    lag = latency(rate)
    x = np.concatenate([clip(rate), np.zeros(lag, dtype=np.float32)])
    controls = {**knob_controls(KNOBS[2], "circuit"), "lv2_enabled": 0.0}
    y = lv2file(lv2_path, "klon_mono", x, rate, tmp_path, controls, lv2file_fix)
    np.testing.assert_array_equal(y[0, :lag], 0.0)
    np.testing.assert_allclose(y[0, lag:], x[:-lag], rtol=0, atol=1e-7)


def test_lv2file_as_packaged(lv2_path, tmp_path):
    """lv2file without the shim: Debian's 0.95 crashes loading a plugin with the worker
    interface (LV2FILE_FIX). Expected to fail here; if it ever runs, it must render right."""
    rate, knobs = 44_100, KNOBS[1]
    lag = latency(rate)
    x = np.concatenate([impulse(rate), np.zeros(lag, dtype=np.float32)])
    try:
        y = lv2file(lv2_path, "klon_mono", x, rate, tmp_path, knob_controls(knobs, "circuit"),
                    None)
    except LV2FileFailed as failed:
        crashed = failed.run.returncode == -signal.SIGSEGV
        refused = "Worker feature missing" in failed.run.stderr + failed.run.stdout
        if crashed or refused:
            pytest.xfail("lv2file 0.95 passes an uninitialised worker#schedule feature "
                         f"(exit {failed.run.returncode})")
        raise
    reference = python_pedal(x, rate, knobs)[:x.size - lag]
    assert relative_error(y[0, lag:], reference) <= TOLERANCE


# ---- JACK: jalv and the JACK program ----------------------------------------------------

class JackServer(loopback.JackServer):
    """klon live's dummy-driver server without its loopback (one port each way), with what
    these tests add: their clients' logs beside jackd's, Python clients, port lookups."""

    def __init__(self, folder: Path, rate: int, block: int):
        super().__init__(folder / "jackd.log", rate, block, timeout=TIMEOUT, loop=False,
                         ports=1)
        self.folder = folder

    def start(self) -> None:
        try:
            super().start()
        except RuntimeError as error:
            # jackd2 comes with the test command: a server that will not start is a fault
            self.stop()
            pytest.fail(f"jackd did not start a dummy server: {error}")

    def run(self, command: list[str], log: str, env: dict | None = None) -> subprocess.Popen:
        """A client program, its output in `log`.log, its stdin a pipe kept open."""
        return self.spawn(command, self.folder / f"{log}.log", subprocess.PIPE, env)

    def client_log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def client(self, name: str):
        import jack
        return jack.Client(f"{name}-{os.getpid()}", servername=self.name, no_start_server=True)

    def ports_of(self, prefix: str, deadline: float, process: subprocess.Popen,
                 log: str) -> tuple[str, str]:
        """The audio input and output port of the client whose name starts with `prefix`,
        once it has registered them."""
        probe = self.client("klon-probe")
        try:
            while True:
                ports = [p for p in probe.get_ports(is_audio=True)
                         if p.name.startswith(prefix)]
                inputs = [p.name for p in ports if p.is_input]
                outputs = [p.name for p in ports if p.is_output]
                if inputs and outputs:
                    return inputs[0], outputs[0]
                assert process.poll() is None, f"{log} exited: {self.client_log(log)[-2000:]}"
                assert time.monotonic() < deadline, f"{log} has no ports: {self.client_log(log)}"
                time.sleep(0.05)
        finally:
            probe.close()


@pytest.fixture(scope="module")
def jack_server(tmp_path_factory):
    if not all(map(shutil.which, ("jackd", "jack_wait", "jack_lsp"))):
        pytest.fail("jackd, jack_wait or jack_lsp not found: install jackd2 "
                    "(scripts/setup --plugins)")
    server = JackServer(tmp_path_factory.mktemp("jack"), JACK_RATE, JACK_BLOCK)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def clients(jack_server):
    """Processes a test starts on the server, stopped at its end whatever happens."""
    started: list[subprocess.Popen] = []

    def spawn(command, log, env=None):
        process = jack_server.run(command, log, env)
        started.append(process)
        return process

    yield spawn
    for process in reversed(started):
        jack_server.stop_process(process)


def stream(server: JackServer, send_to: str, receive_from: str, x: np.ndarray,
           frames: int) -> np.ndarray:
    """x (float32) played into `send_to` and `frames` samples of `receive_from` from the cycle
    the first sample went in, with the server in freewheel mode (every client runs in every
    cycle, none waits for the clock, none is dropped). A client that sends and another that
    receives: the graph sender -> host -> receiver has no loop, so all three run in one cycle
    and the host's own latency is all there is between them."""
    sender, receiver = server.client("klon-send"), server.client("klon-receive")
    state = {"freewheel": False, "start": None}
    blocks: dict[int, np.ndarray] = {}
    try:
        out = sender.outports.register("out")
        into = receiver.inports.register("in")

        @sender.set_freewheel_callback
        def _freewheel(starting):
            state["freewheel"] = starting

        @sender.set_process_callback
        def _send(n):
            buffer = out.get_array()
            buffer[:] = 0.0
            if state["freewheel"]:
                now = sender.last_frame_time
                if state["start"] is None:
                    state["start"] = now
                part = x[now - state["start"]:now - state["start"] + n]
                buffer[:part.size] = part

        @receiver.set_process_callback
        def _receive(n):
            if state["freewheel"]:
                blocks[receiver.last_frame_time] = into.get_array().copy()

        sender.activate()
        receiver.activate()
        sender.connect(out, send_to)
        receiver.connect(receive_from, into)
        deadline = time.monotonic() + TIMEOUT
        sender.set_freewheel(True)
        try:
            while state["start"] is None or max(blocks, default=-1) < state["start"] + frames:
                assert time.monotonic() < deadline, "the freewheeling stream did not finish"
                time.sleep(0.01)
        finally:
            sender.set_freewheel(False)
    finally:
        for client in (sender, receiver):
            client.deactivate()
            client.close()
    start = state["start"]
    times = np.array(sorted(t for t in blocks if t >= start))
    # (the frame times themselves in the message: a run once saw the first one far past the
    # start, which looked like a jump in JACK's frame clock rather than a dropped cycle)
    assert times[0] == start and np.all(np.diff(times) == server.block), \
        f"cycles were dropped: started at frame {start}, received at {times[:4].tolist()}..." \
        f" of {len(blocks)} blocks (steps {sorted(set(np.diff(times).tolist()))[:4]})"
    return np.concatenate([blocks[t] for t in times])[:frames].astype(np.float64)


def port_latencies(server: JackServer, client: str) -> dict[str, set[tuple[int, int]]]:
    """Every port's playback and capture latency ranges (jack_lsp -l)."""
    ranges: dict[str, set[tuple[int, int]]] = {}
    port = None
    for line in server.tool("jack_lsp", "-l", client).stdout.splitlines():
        if not line.startswith((" ", "\t")):
            port = line.strip()
            ranges[port] = set()
        elif "latency = [" in line:
            low, high = line.split("[")[1].split("]")[0].split()
            ranges[port].add((int(low), int(high)))
    return ranges


@pytest.mark.parametrize("engine", ENGINES)
def test_jalv_streams_the_python_pedal_and_reports_the_latency(jack_server, clients,
                                                               lv2_path, engine):
    rate, knobs = jack_server.rate, KNOBS[1]
    lag = latency(rate)
    name = f"klon-jalv-{engine}-{os.getpid()}"
    command = ["jalv", "-n", name, "-x"]
    for control, value in knob_controls(knobs, engine).items():
        command += ["-c", f"{control}={value:g}"]
    jalv = clients([*command, URI + "klon_mono"], "jalv", {"LV2_PATH": str(lv2_path)})
    deadline = time.monotonic() + TIMEOUT
    send_to, receive_from = jack_server.ports_of(f"{name}:", deadline, jalv, "jalv")
    assert (send_to, receive_from) == (f"{name}:lv2_audio_in_1", f"{name}:lv2_audio_out_1")
    # jalv reads the plugin's latency port after a run and gives it to JACK as its ports'
    # latency (jalv 1.6 sets it on the ports of the flow it measured: input ports' capture
    # range, output ports' playback range); nothing else is connected, so it is L alone
    while True:
        ranges = port_latencies(jack_server, f"{name}:")
        found = set().union(*ranges.values())
        if (lag, lag) in found:
            break
        assert jalv.poll() is None, jack_server.client_log("jalv")
        assert time.monotonic() < deadline, f"jalv reports no latency {lag}: {ranges}"
        time.sleep(0.1)
    assert found <= {(0, 0), (lag, lag)}, ranges
    x = clip(rate)
    y = stream(jack_server, send_to, receive_from, x, x.size + lag)
    assert jalv.poll() is None, jack_server.client_log("jalv")
    reference = python_pedal(np.concatenate([x, np.zeros(lag, np.float32)]), rate, knobs,
                             engine)[:x.size]
    # nothing before the latency (the neural engine's idle output for silence is +-3e-10)
    assert relative_error(y, np.concatenate([np.zeros(lag), reference])) <= TOLERANCE


def test_jack_program_plays_the_circuit_pedal(jack_server, clients, plugins):
    """DPF's JACK program (knobs at their defaults, circuit engine; it reports no latency to
    JACK, so the delay is found by matching, and must be the plugin's latency)."""
    rate = jack_server.rate
    lag = latency(rate)
    program = clients([str(plugins / "klon_mono")], "program")
    deadline = time.monotonic() + TIMEOUT
    send_to, receive_from = jack_server.ports_of("Klon Centaur (mono):", deadline, program,
                                                 "program")
    x = sine(220.0, 0.3, 0.2, rate)
    search = 2048
    y = stream(jack_server, send_to, receive_from, x, x.size + search)
    assert program.poll() is None, jack_server.client_log("program")
    assert np.all(np.isfinite(y)) and np.max(np.abs(y)) > 0.05
    assert np.max(np.abs(y[:x.size] - x)) > 0.05  # not the input passed through
    reference = python_pedal(x, rate)
    errors = [relative_error(y[d:d + x.size], reference) for d in range(search)]
    best = int(np.argmin(errors))
    assert (best, errors[best] <= TOLERANCE) == (lag, True), (best, errors[best])
