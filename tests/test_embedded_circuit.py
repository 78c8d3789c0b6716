"""The circuit gain stage as generated C99 (klon.export.c99.circuit_c) against klon.pedal.GainStage,
and the C pedal built on it (-DKLON_ENGINE_CIRCUIT) against klon.Centaur(engine="circuit").

Built with the host gcc and the strict flags (a missing gcc fails these tests), run through
ctypes on a guitar DI clip with the knobs moved mid-clip, streamed in the same blocks as
the Python stage or pedal.
"""
import ctypes
import subprocess

import numpy as np
import pytest
from conftest import DATA, di_clip

from klon.core.metrics import esr
from klon.dsp.synth import guitar_riff
from klon.export import toolchain
from klon.export.c99.circuit_c import PRECISIONS, write_circuit_gain
from klon.export.c99.neural_c import export_c
from klon.pedal import GainStage
from klon.pedal.centaur import Centaur

HOST_MATCH = 1e-5  # the host-match tolerance: max abs error over the signal's peak
SHIM = ('#include "klon_circuit_gain.h"\n'
        "unsigned long klon_cg_sizeof(void) { return sizeof(klon_circuit_gain); }\n"
        "int klon_cg_latency(float rate) { return KLON_CIRCUIT_GAIN_LATENCY(rate); }\n")


def build(folder, **settings):
    """The generated C with sizeof and latency helpers, as a ctypes library."""
    header, source = write_circuit_gain(folder, **settings)
    shim = folder / "shim.c"
    shim.write_text(SHIM)
    lib = ctypes.CDLL(str(toolchain.host_library([source, shim], folder / "libcircuit.so",
                                                 include_dirs=[folder])))
    lib.klon_cg_sizeof.restype = ctypes.c_ulong
    lib.klon_circuit_gain_init.argtypes = [ctypes.c_void_p, ctypes.c_float, ctypes.c_float]
    lib.klon_circuit_gain_set_gain.argtypes = [ctypes.c_void_p, ctypes.c_float]
    lib.klon_circuit_gain_process.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                              ctypes.c_int]
    lib.klon_circuit_gain_process_high.argtypes = lib.klon_circuit_gain_process.argtypes
    lib.klon_circuit_gain_downsample.argtypes = lib.klon_circuit_gain_process.argtypes
    lib.klon_circuit_gain_reset.argtypes = [ctypes.c_void_p]
    lib.klon_cg_latency.argtypes = [ctypes.c_float]
    return lib


class CStage:
    """The C stage behind GainStage's streaming interface (float32 in and out, as in C)."""

    def __init__(self, lib, sample_rate, gain):
        self.lib = lib
        self.state = (ctypes.c_double * (lib.klon_cg_sizeof() // 8 + 1))()
        self.status = lib.klon_circuit_gain_init(self.state, sample_rate, gain)

    def set_gain(self, gain):
        self.lib.klon_circuit_gain_set_gain(self.state, gain)

    def process(self, x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        y = np.empty_like(x)
        self.lib.klon_circuit_gain_process(self.state, x.ctypes.data, y.ctypes.data, x.size)
        return y


def play(stage, x, gain_moves, set_gain, block=256):
    """Stream x in blocks, moving Gain at the given sample positions (block boundaries)."""
    out, moves = [], dict(gain_moves)
    for start in range(0, len(x), block):
        if start in moves:
            set_gain(moves[start])
        out.append(stage.process(x[start:start + block]))
    return np.concatenate(out)


def python_stage(x, sample_rate, gain, gain_moves, diode="1n34a"):
    stage = GainStage(sample_rate, gain=gain, diode=diode)

    def set_gain(value):
        stage.gain = value

    return play(stage, x.astype(np.float32).astype(np.float64), gain_moves, set_gain)


def c_stage(lib, x, sample_rate, gain, gain_moves):
    stage = CStage(lib, sample_rate, gain)
    assert stage.status == 0
    return play(stage, x, gain_moves, stage.set_gain)


@pytest.fixture(scope="module")
def clip():
    """Two guitar DI clips back to back (1 s at 44.1 kHz), or a synthesized riff without the
    reference data."""
    if DATA is None:
        return guitar_riff(44_100, 1.0).astype(np.float64)
    return di_clip("sample0", "sample250")


@pytest.fixture(scope="module")
def libraries(tmp_path_factory):
    root = tmp_path_factory.mktemp("circuit_c")
    return {name: build(root / name, precision=name) for name in ("mixed", "double")}


# Gain 0.2, then to 1 at 0.16 s (a 50 ms glide), to 0 at 0.41 s, to 0.75 at 0.7 s
MOVES = [(7168, 1.0), (17920, 0.0), (30976, 0.75)]


def relative_error(y, reference):
    return np.max(np.abs(y - reference)) / np.max(np.abs(reference))


@pytest.mark.parametrize("precision, tolerance", [("mixed", HOST_MATCH), ("double", 1e-6)])
def test_c_matches_python_on_a_guitar_clip_with_gain_moves(libraries, clip, precision, tolerance):
    """The default (mixed float/double) within the host-match tolerance; all-double to the
    float32 output's own rounding."""
    reference = python_stage(clip, 44_100, 0.2, MOVES)
    y = c_stage(libraries[precision], clip, 44_100, 0.2, MOVES)
    assert relative_error(y, reference) <= tolerance
    assert esr(reference, y) < 1e-10


@pytest.mark.parametrize("diode", ["1n34a", "mbrb2545ct"])
@pytest.mark.parametrize("rate", [22_050, 96_000])
def test_other_rates_and_the_other_diode(tmp_path, clip, rate, diode):
    """22.05 kHz runs at 4x (two half-band steps), 96 kHz at 2x; the clip is taken as being at
    that rate."""
    lib = build(tmp_path, diode=diode)
    x = clip[:22_050]
    moves = [(4096, 0.9)]
    reference = python_stage(x, rate, 0.4, moves, diode=diode)
    y = c_stage(lib, x, rate, 0.4, moves)
    assert relative_error(y, reference) <= HOST_MATCH


def test_block_size_does_not_matter_while_the_knob_rests(libraries, clip):
    lib = libraries["mixed"]
    x = clip[:8000]
    whole = CStage(lib, 48_000, 0.6).process(x)
    stage = CStage(lib, 48_000, 0.6)
    pieces = []
    start = 0
    for size in [1, 7, 64, 3, 512, 1000] * 20:
        pieces.append(stage.process(x[start:start + size]))
        start += size
        if start >= x.size:
            break
    np.testing.assert_array_equal(np.concatenate(pieces)[:x.size], whole)


def test_reset_clears_the_state_and_keeps_the_knob(libraries, clip):
    lib = libraries["mixed"]
    stage = CStage(lib, 44_100, 0.8)
    first = stage.process(clip[:4000])
    stage.process(clip[4000:9000])
    lib.klon_circuit_gain_reset(stage.state)
    np.testing.assert_array_equal(stage.process(clip[:4000]), first)


def test_the_header_states_python_s_latency(libraries):
    for rate in (22_050, 32_000, 44_100, 96_000, 192_000):
        assert libraries["mixed"].klon_cg_latency(rate) == GainStage(rate).latency


@pytest.mark.parametrize("rate", [8_000.0, 22_049.0, 192_001.0, float("nan")])
def test_unsupported_rates_are_refused(libraries, rate):
    assert CStage(libraries["mixed"], rate, 0.5).status != 0


def test_knob_values_are_clamped(libraries, clip):
    lib = libraries["mixed"]
    x = clip[:6000]
    over, at_one = CStage(lib, 44_100, 0.3), CStage(lib, 44_100, 0.3)
    over.set_gain(7.0)
    at_one.set_gain(1.0)
    np.testing.assert_array_equal(over.process(x), at_one.process(x))
    np.testing.assert_array_equal(CStage(lib, 44_100, -1.0).process(x),
                                  CStage(lib, 44_100, 0.0).process(x))


def test_the_two_halves_compose_to_process_bit_for_bit(libraries, clip):
    """process_high then downsample, in uneven blocks with the Gain gliding from sample 1500,
    at 2x and 4x: klon_circuit_gain_process's samples exactly."""
    lib = libraries["mixed"]
    x = np.ascontiguousarray(clip[:6000], dtype=np.float32)
    for rate, factor in ((22_050, 4), (48_000, 2)):
        whole, split = CStage(lib, rate, 0.3), CStage(lib, rate, 0.3)
        y, y_split = np.empty_like(x), np.empty_like(x)
        high = np.zeros(factor * 500)
        start, sizes, moved = 0, iter([1, 7, 64, 3, 500, 130] * 20), False
        while start < x.size:
            if start >= 1500 and not moved:
                moved = True
                whole.set_gain(0.9)
                split.set_gain(0.9)
            n = min(next(sizes), x.size - start)
            y[start:start + n] = whole.process(x[start:start + n])
            chunk = x[start:start + n]
            assert lib.klon_circuit_gain_process_high(split.state, chunk.ctypes.data,
                                                      high.ctypes.data, n) == factor * n
            lib.klon_circuit_gain_downsample(split.state, high.ctypes.data,
                                             y_split[start:].ctypes.data, n)
            start += n
        np.testing.assert_array_equal(y_split, y)
        assert lib.klon_circuit_gain_process_high(split.state, x.ctypes.data, high.ctypes.data,
                                                  0) == 0


@pytest.fixture(scope="module")
def circuit_pedal(tmp_path_factory):
    """The exported pedal with the circuit gain stage (-DKLON_ENGINE_CIRCUIT), through ctypes."""
    folder = tmp_path_factory.mktemp("circuit_pedal")
    export_c(folder, circuit=True)
    lib = ctypes.CDLL(str(toolchain.host_library(
        [folder / "klon_pedal.c", folder / "klon_circuit_gain.c"], folder / "libpedal.so",
        include_dirs=[folder], defines=["KLON_ENGINE_CIRCUIT"])))
    f, p, i = ctypes.c_float, ctypes.c_void_p, ctypes.c_int
    lib.klon_pedal_init.argtypes = [p, f, f, f, f]
    lib.klon_pedal_set_params.argtypes = [p, f, f, f]
    lib.klon_pedal_process.argtypes = [p, p, p, i]
    lib.klon_pedal_process_pair.argtypes = [p, p, p, p, p, p, i]
    lib.klon_pedal_latency.argtypes = [p]
    return lib


# uneven blocks (one sample to more than the pedal's 16-sample chunk and Python's 256 buffers)
PEDAL_BLOCKS = [1, 7, 64, 300, 33, 128, 16, 511]


@pytest.mark.parametrize("rate", [22_050, 44_100, 48_000, 96_000])
def test_the_c_circuit_pedal_matches_centaur(circuit_pedal, clip, rate):
    """klon_pedal_* with the circuit gain stage against Centaur(engine="circuit") streamed in
    the same uneven blocks: the treble control runs at the oversampled rate in both (between the
    gain stage and the down-sampler), its 50 ms glide counted there. Gain 0.3, Treble 0.5,
    Level 0.5; at 0.15 s Gain glides to 0.9, Treble to 0.15, Level to 0.8. 0.3 s of the clip,
    taken as being at `rate` (22.05 kHz runs at 4x)."""
    lib = circuit_pedal
    x = np.ascontiguousarray(clip[:int(0.3 * rate)], dtype=np.float32)
    state = ctypes.create_string_buffer(1 << 16)
    assert lib.klon_pedal_init(state, rate, 0.3, 0.5, 0.5) == 0
    pedal = Centaur(rate, 0.3, 0.5, 0.5, engine="circuit")
    assert lib.klon_pedal_latency(state) == pedal.latency
    y, reference = np.zeros_like(x), np.zeros(x.size)
    start, block, moved = 0, 0, False
    while start < x.size:
        stop = min(start + PEDAL_BLOCKS[block % len(PEDAL_BLOCKS)], x.size)
        block += 1
        if not moved and stop > x.size // 2:
            moved = True
            assert lib.klon_pedal_set_params(state, 0.9, 0.15, 0.8) == 0
            pedal.gain, pedal.treble, pedal.level = 0.9, 0.15, 0.8
        lib.klon_pedal_process(state, x[start:].ctypes.data, y[start:].ctypes.data, stop - start)
        reference[start:stop] = pedal.process(x[start:stop].astype(np.float64))
        start = stop
    assert np.max(np.abs(reference)) > 0.1
    assert relative_error(y, reference) <= HOST_MATCH


@pytest.mark.parametrize("rate_b", [44_100, 96_000, 22_050])
def test_a_channel_pair_gives_each_channel_its_own_samples(circuit_pedal, clip, rate_b):
    """klon_pedal_process_pair (the channels side by side, as the plugins run stereo) against
    klon_pedal_process on each, bit for bit: different signals and knobs, Gain glides that
    start 4 blocks apart (their 16-sample steps out of line), uneven blocks; the second channel
    at 44.1 kHz, at 96 kHz (both 2x oversampled) or at 22.05 kHz (4x: the two run apart)."""
    lib = circuit_pedal
    x = np.ascontiguousarray(clip[:int(0.2 * 44_100)], dtype=np.float32)
    x_b = np.ascontiguousarray(-0.5 * x[::-1])
    settings = [(44_100, 0.2, 0.5, 0.5), (rate_b, 0.8, 0.3, 0.7)]
    states = [ctypes.create_string_buffer(1 << 16) for _ in range(4)]
    for state, (rate, *knobs) in zip(states, settings + settings, strict=True):
        assert lib.klon_pedal_init(state, rate, *knobs) == 0
    mono = [np.zeros_like(x), np.zeros_like(x)]
    pair = [np.zeros_like(x), np.zeros_like(x)]
    start, block = 0, 0
    while start < x.size:
        stop = min(start + PEDAL_BLOCKS[block % len(PEDAL_BLOCKS)], x.size)
        if block in (5, 9):  # the first channel's Gain glides, then the second's
            for state in states[block == 9::2]:
                assert lib.klon_pedal_set_params(state, 0.9, 0.5, 0.5) == 0
        block += 1
        for state, signal, out in zip(states[:2], (x, x_b), mono, strict=True):
            lib.klon_pedal_process(state, signal[start:].ctypes.data, out[start:].ctypes.data,
                                   stop - start)
        lib.klon_pedal_process_pair(states[2], states[3], x[start:].ctypes.data,
                                    x_b[start:].ctypes.data, pair[0][start:].ctypes.data,
                                    pair[1][start:].ctypes.data, stop - start)
        start = stop
    assert np.max(np.abs(mono[0])) > 0.1 and np.max(np.abs(mono[1])) > 0.1
    np.testing.assert_array_equal(pair[0], mono[0])
    np.testing.assert_array_equal(pair[1], mono[1])


@pytest.mark.parametrize("precision", PRECISIONS)
def test_every_precision_builds_strictly_with_no_writable_globals(tmp_path, precision):
    """Pedantic C99 with -Werror, and an object with no writable data: nothing in .data or
    .bss (the tree descriptors' pointers may sit in .data.rel.ro, read-only once loaded)."""
    header, source = write_circuit_gain(tmp_path, precision=precision)
    obj = tmp_path / "klon_circuit_gain.o"
    subprocess.run([toolchain.find_tool("gcc"), *toolchain.HOST_FLAGS, "-O2", "-c", str(source),
                    "-o", str(obj)], check=True, capture_output=True)
    listing = subprocess.run(["size", "-A", str(obj)], check=True, capture_output=True,
                             text=True).stdout
    sections = {line.split()[0]: int(line.split()[1]) for line in listing.splitlines()
                if line.startswith(".")}
    writable = {name: size for name, size in sections.items()
                if (name.startswith((".data", ".bss")) and not name.startswith(".data.rel.ro")
                    and size)}
    assert not writable, listing
    text = source.read_text() + header.read_text()
    assert "malloc" not in text and "static klon_circuit_gain" not in text


def test_the_library_compiles_as_one_unit_with_its_functions_private(tmp_path):
    """KLON_API defined static before including both .c files (as the plugins build each
    engine): no two helpers share a name, and nothing is left exported."""
    export_c(tmp_path, circuit=True)
    unit = tmp_path / "unit.c"
    unit.write_text('#define KLON_API static inline\n#include "klon_pedal.c"\n'
                    '#include "klon_circuit_gain.c"\n'
                    "int klon_unit_probe(void) { return (int)sizeof(klon_pedal); }\n")
    obj = tmp_path / "unit.o"
    subprocess.run([toolchain.find_tool("gcc"), *toolchain.HOST_FLAGS, "-DKLON_ENGINE_CIRCUIT",
                    "-O2", "-c", str(unit), "-o", str(obj)], check=True, capture_output=True)
    symbols = subprocess.run(["nm", "-g", "--defined-only", str(obj)], check=True,
                             capture_output=True, text=True).stdout.split()
    assert symbols[-1] == "klon_unit_probe" and len(symbols) == 3  # address, type, name
