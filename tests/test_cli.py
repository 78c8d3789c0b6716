"""The `klon` command end to end, run the way a user runs it: as a separate process.

Each run pays Python's start-up and the library's imports (about 2 s), so the bad-input cases
are started all at once by one fixture and each test then waits for its own run.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import (
    KLON,
    PUBLISHED,
    TIMEOUT,
    di_clip,
    needs_data,
    reference_path,
    run_klon,
    target_clip,
)

import klon
from klon.core.progress import COMPILE_NOTICE

ENTRY_POINT = Path(sys.executable).with_name("klon")


def guitar(rate, seconds=0.2, channels=1, volts=0.2, seed=0):
    """A plucked-note-like signal at guitar level: a decaying chord plus a little noise, one
    different signal per channel (frames x channels, as soundfile wants it)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    out = []
    for ch in range(channels):
        f0 = 110.0 * (1.5 ** ch)
        note = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi)) / k
                   for k in (1, 2, 3))
        note = note * np.exp(-3.0 * t) + 0.05 * rng.standard_normal(t.size)
        out.append(volts * note / np.max(np.abs(note)))
    return np.stack(out, axis=1)


def run(args, cwd=None, command=KLON):
    return run_klon("process", *args, cwd=cwd, command=command)


def listing(folder):
    return sorted(os.listdir(folder))


def assert_ok(result):
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def assert_good_output(in_path, out_path, folder):
    """Same rate, channels and length as the input; float WAV; finite; not silent; and the
    output folder holds nothing but the input and the output (no leftover temporaries)."""
    info_in, info_out = sf.info(str(in_path)), sf.info(str(out_path))
    assert info_out.samplerate == info_in.samplerate
    assert info_out.channels == info_in.channels
    assert info_out.frames == info_in.frames
    if str(out_path).endswith(".wav"):
        assert info_out.format == "WAV"
        assert info_out.subtype in ("FLOAT", "DOUBLE")
    y, _ = sf.read(str(out_path), dtype="float64", always_2d=True)
    assert np.all(np.isfinite(y))
    for channel in y.T:
        assert np.sqrt(np.mean(channel ** 2)) > 1e-3  # every channel has signal
    assert set(listing(folder)) == {Path(in_path).name, Path(out_path).name}
    return y


# --- files that work ----------------------------------------------------------------------

# (name, rate, channels, file subtype, input extension, options, seconds)
GOOD_FILES = [
    ("mono-int16-44k1", 44_100, 1, "PCM_16", ".wav", [], 0.2),
    ("stereo-int24-48k", 48_000, 2, "PCM_24", ".wav",
     ["--gain", "0.8", "--treble", "0.3", "--level", "0.7"], 0.2),
    ("flac-44k1", 44_100, 1, "PCM_24", ".flac", ["--gain", "0", "--level", "1"], 0.2),
    ("mono-22k05", 22_050, 1, "PCM_16", ".wav",
     ["--gain", "1", "--treble", "1", "--diode", "mbrb2545ct"], 0.3),
    ("mono-96k", 96_000, 1, "PCM_24", ".wav",
     ["--gain", "0.2", "--treble", "0", "--level", "0.3", "--engine", "circuit",
      "--stage", "full", "--diode", "1n34a"], 0.1),
]


def _knobs(options):
    knobs = {"gain": 0.5, "treble": 0.5, "level": 0.5, "diode": "1n34a"}
    for flag, value in zip(options[::2], options[1::2], strict=True):
        name = flag[2:]
        if name in ("gain", "treble", "level"):
            knobs[name] = float(value)
        elif name == "diode":
            knobs[name] = value
    return knobs


@pytest.mark.parametrize("name, rate, channels, subtype, extension, options, seconds",
                         GOOD_FILES, ids=[case[0] for case in GOOD_FILES])
def test_process_file(tmp_path, name, rate, channels, subtype, extension, options, seconds):
    in_path, out_path = tmp_path / f"in{extension}", tmp_path / "out.wav"
    sf.write(str(in_path), guitar(rate, seconds, channels), rate, subtype=subtype)
    before = in_path.read_bytes()
    # one case through the installed `klon` script, the rest through `python -m klon.cli`
    command = [ENTRY_POINT] if name == "mono-int16-44k1" else KLON
    assert Path(command[0]).exists(), f"{command[0]} is not installed"
    result = run([in_path, out_path, *options], command=command)
    assert_ok(result)
    y = assert_good_output(in_path, out_path, tmp_path)
    assert in_path.read_bytes() == before
    if channels > 1:  # channels are processed separately, not mixed or copied
        assert not np.allclose(y[:, 0], y[:, 1])
    # the knobs and the diode reached the model: the same numbers the library gives
    x, _ = sf.read(str(in_path), dtype="float32", always_2d=True)
    k = _knobs(options)
    expected = klon.Centaur(rate, k["gain"], k["treble"], k["level"], diode=k["diode"])(x.T)
    np.testing.assert_allclose(y.T, expected, rtol=0, atol=1e-6)


# --- the gain stage alone -----------------------------------------------------------------

def test_stage_gain_matches_library(tmp_path):
    rate = 48_000
    in_path, out_path = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(str(in_path), guitar(rate, 0.2, channels=2), rate, subtype="FLOAT")
    result = run([in_path, out_path, "--stage", "gain", "--gain", "0.7",
                  "--diode", "mbrb2545ct"])
    assert_ok(result)
    y = assert_good_output(in_path, out_path, tmp_path)
    x, _ = sf.read(str(in_path), dtype="float32", always_2d=True)
    expected = klon.GainStage(rate, 0.7, "mbrb2545ct")(x.T)
    np.testing.assert_allclose(y.T, expected, rtol=0, atol=1e-6)


def test_stage_gain_output_is_volts_beyond_one(tmp_path):
    """0.5 V in at full gain: the gain stage swings past 1 V, and the float WAV keeps it."""
    rate = 44_100
    t = np.arange(int(0.2 * rate)) / rate
    in_path, out_path = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(str(in_path), 0.5 * np.sin(2 * np.pi * 220 * t), rate, subtype="FLOAT")
    result = run([in_path, out_path, "--stage", "gain", "--gain", "1"])
    assert_ok(result)
    y = assert_good_output(in_path, out_path, tmp_path)
    assert sf.info(str(out_path)).subtype in ("FLOAT", "DOUBLE")
    assert np.max(np.abs(y)) > 1.0


# --- the neural engine --------------------------------------------------------------------


def test_neural_engine_full_pedal_matches_library(tmp_path):
    in_path, out_path = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(str(in_path), guitar(44_100, 0.2, channels=2), 44_100, subtype="PCM_24")
    result = run([in_path, out_path, "--engine", "neural", "--models", PUBLISHED,
                  "--gain", "0.6", "--treble", "0.3"])
    assert_ok(result)
    y = assert_good_output(in_path, out_path, tmp_path)
    x, _ = sf.read(str(in_path), dtype="float32", always_2d=True)
    expected = klon.Centaur(44_100, 0.6, 0.3, engine="neural", models=PUBLISHED)(x.T)
    np.testing.assert_allclose(y.T, expected, rtol=0, atol=1e-6)


def test_neural_gain_stage_speaks_the_reference_clips_volts(tmp_path):
    """--stage gain with one published model on a reference clip reproduces the clip's target
    (the models were trained in exactly this volts-in, volts-out convention)."""
    in_path, out_path = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(str(in_path), di_clip("sample7"), 44_100, subtype="FLOAT")
    result = run([in_path, out_path, "--engine", "neural", "--stage", "gain", "--model",
                  reference_path("chowcentaur-models", "centaur_100.json"), "--gain", "0.3"])
    assert_ok(result)
    y = assert_good_output(in_path, out_path, tmp_path)[:, 0]
    expected = target_clip(1.0, "sample7")[14_000:]
    esr = np.sum((y[14_000:] - expected) ** 2) / np.sum(expected ** 2)
    assert esr < 0.05  # a few percent, as published; a wrong scale or sign would be >= 25 %


# --- replacing an existing output ---------------------------------------------------------

def test_existing_output_replaced_atomically(tmp_path):
    """The new file is renamed into place: a hard link to the old output still holds the old
    bytes (an in-place rewrite would change both), and the output is a new, whole file."""
    in_path, out_path = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(str(in_path), guitar(44_100, 0.1, channels=2), 44_100, subtype="PCM_16")
    sf.write(str(out_path), np.zeros(10), 8_000, subtype="PCM_16")
    old = out_path.read_bytes()
    witness = tmp_path.parent / f"{tmp_path.name}-witness.wav"
    os.link(out_path, witness)
    try:
        old_inode = os.stat(out_path).st_ino
        assert_ok(run([in_path, out_path]))
        assert witness.read_bytes() == old
        assert os.stat(out_path).st_ino != old_inode
        assert out_path.read_bytes() != old
        assert_good_output(in_path, out_path, tmp_path)
    finally:
        witness.unlink()


def test_existing_output_kept_on_error(tmp_path):
    in_path, out_path = tmp_path / "in.wav", tmp_path / "out.wav"
    bad = guitar(44_100, 0.1)
    bad[100, 0] = np.nan
    sf.write(str(in_path), bad, 44_100, subtype="FLOAT")
    sf.write(str(out_path), guitar(44_100, 0.1, seed=1), 44_100, subtype="PCM_16")
    old = out_path.read_bytes()
    result = run([in_path, out_path])
    assert result.returncode != 0
    assert out_path.read_bytes() == old
    assert listing(tmp_path) == ["in.wav", "out.wav"]


# --- bad input ----------------------------------------------------------------------------

def _good_wav(folder, name="in.wav", rate=44_100):
    path = folder / name
    sf.write(str(path), guitar(rate, 0.1), rate, subtype="PCM_16")
    return path


def _missing(folder):
    return folder / "nothing.wav", []


def _directory(folder):
    path = folder / "takes.wav"
    path.mkdir()
    return path, []


def _text(folder):
    path = folder / "notes.wav"
    path.write_text("this is not audio\n" * 20)
    return path, []


def _truncated(folder):
    path = folder / "cut.wav"
    sf.write(str(path), guitar(48_000, 0.1, channels=2), 48_000, subtype="PCM_24")
    data = path.read_bytes()
    path.write_bytes(data[:-1001])  # mid-data, and mid-frame
    return path, []


def _empty(folder):
    path = folder / "empty.wav"
    sf.write(str(path), np.zeros((0, 1)), 44_100, subtype="PCM_16")
    return path, []


def _non_finite(value):
    def setup(folder):
        x = guitar(44_100, 0.1)
        x[1234, 0] = value
        path = folder / "bad.wav"
        sf.write(str(path), x, 44_100, subtype="FLOAT")
        return path, []
    return setup


def _knob(*options):
    def setup(folder):
        return _good_wav(folder), list(options)
    return setup


def _rate(rate, *options):
    def setup(folder):
        return _good_wav(folder, f"at{rate}.wav", rate), list(options)
    return setup


# name -> (setup(folder) -> (input, extra options), words the error must hold (any of them),
#          output given as "same" (the input), "same-other-spelling", "no-folder" or a name)
BAD_CASES = {
    "missing-file": (_missing, ["no such file", "not found", "does not exist"], "out.wav"),
    "directory": (_directory, ["directory"], "out.wav"),
    "text-file": (_text, ["not a readable audio", "not an audio", "format"], "out.wav"),
    "truncated": (_truncated, ["truncated"], "out.wav"),
    "empty": (_empty, ["no audio", "0 frames", "empty"], "out.wav"),
    "nan": (_non_finite(np.nan), ["nan"], "out.wav"),
    "inf": (_non_finite(np.inf), ["inf"], "out.wav"),
    "gain-1.5": (_knob("--gain", "1.5"), ["gain"], "out.wav"),
    "treble--0.1": (_knob("--treble=-0.1"), ["treble"], "out.wav"),
    "level-2": (_knob("--level", "2"), ["level"], "out.wav"),
    "gain-abc": (_knob("--gain", "abc"), ["abc"], "out.wav"),
    "rate-8000-stage-gain": (_rate(8_000, "--stage", "gain"), ["8000"], "out.wav"),
    "rate-384000": (_rate(384_000), ["384000"], "out.wav"),
    "out-is-in": (lambda f: (_good_wav(f), []), ["overwrite"], "same"),
    "out-is-in-other-spelling": (lambda f: (_good_wav(f), []), ["overwrite"],
                                 "same-other-spelling"),
    "out-folder-missing": (lambda f: (_good_wav(f), []), ["does not exist", "no such"],
                           "no-folder"),
    "neural-no-such-set": (_knob("--engine", "neural", "--models", "no-such-set"),
                           ["no model set 'no-such-set'"], "out.wav"),
    "neural-8000": (_rate(8_000, "--engine", "neural"), ["8000"], "out.wav"),
    "neural-model-missing": (_knob("--engine", "neural", "--model", "nothing.json"),
                             ["no such file"], "out.wav"),
    "models-without-neural": (_knob("--models", str(PUBLISHED)), ["--engine neural"], "out.wav"),
    "neural-with-diode": (_knob("--engine", "neural", "--stage", "gain", "--diode", "mbrb2545ct",
                                "--models", str(PUBLISHED)), ["circuit engine"], "out.wav"),
}


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory):
    """Start every bad-input run at once; each test waits for its own."""
    runs = {}
    for name, (setup, _, output) in BAD_CASES.items():
        folder = tmp_path_factory.mktemp(name)
        (folder / "sub").mkdir()
        in_path, options = setup(folder)
        if output == "same":
            out_path = in_path
        elif output == "same-other-spelling":
            out_path = folder / "sub" / ".." / in_path.name
        elif output == "no-folder":
            out_path = folder / "no-such-folder" / "out.wav"
        else:
            out_path = folder / output
        before = in_path.read_bytes() if in_path.is_file() else None
        process = subprocess.Popen([*KLON, "process", str(in_path), str(out_path), *options],
                                   cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        runs[name] = dict(folder=folder, input=in_path, output=out_path, before=before,
                          listing=listing(folder), process=process)
    yield runs
    for case in runs.values():
        if case["process"].poll() is None:
            case["process"].kill()
            case["process"].wait()


@pytest.mark.parametrize("name", list(BAD_CASES))
def test_bad_input(bad_runs, name):
    case = bad_runs[name]
    _, stderr = case["process"].communicate(timeout=TIMEOUT)
    words = BAD_CASES[name][1]
    assert case["process"].returncode != 0
    assert "Traceback" not in stderr
    # a slow start (kernels compiling) may say so first; nothing else comes before the error
    lines = [line for line in stderr.strip().splitlines() if line != COMPILE_NOTICE]
    if name == "gain-abc":  # argparse's own usage error is fine here
        assert case["process"].returncode == 2
        assert lines and "error" in lines[-1] and "--gain" in lines[-1]
    else:
        assert len(lines) == 1, stderr
        assert lines[0].startswith("klon: error:"), stderr
    assert any(word in lines[-1].lower() for word in words), stderr
    # nothing written: no output, no temporary left behind, the input untouched
    if case["output"] != case["input"] and "sub" not in case["output"].parts:
        assert not os.path.lexists(case["output"])
    assert not (case["folder"] / "no-such-folder").exists()
    assert listing(case["folder"]) == case["listing"]
    assert listing(case["folder"] / "sub") == []
    if case["before"] is not None:
        assert case["input"].read_bytes() == case["before"]


# --- klon score ---------------------------------------------------------------------------

@needs_data
def test_score_prints_a_row_per_gain():
    result = run_klon("score", "--clips", "2")
    assert_ok(result)
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| Gain | published train / val ESR %")
    assert [row.split(" | ")[0] for row in rows[1:]] == \
        ["| 0.00", "| 0.25", "| 0.50", "| 0.75", "| 1.00"]
    assert "2 clips, samples 14000.. of each." in result.stdout


def test_score_refuses_a_folder_without_the_reference_data(tmp_path):
    result = run_klon("score", "--data", tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == \
        [f"klon: error: no klon-ltspice/DataIn folder under {tmp_path}"]
