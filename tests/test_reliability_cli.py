"""`klon process` as a file processor that can be trusted with long takes and many files: it
streams (flat memory, output equal to the whole-file result), checks the output path before any
work, stops at once on Ctrl-C or SIGTERM leaving nothing behind, says when it clips or is much
louder than its input, refuses read-only outputs, says when the first run compiles, and
processes batches with one failure not stopping the rest.

Run as a user runs it (its own process). Times are never asserted beyond generous bounds a busy
2-core machine passes.
"""
import os
import pty
import re
import signal
import subprocess
import threading
import time

import numpy as np
import pytest
import soundfile as sf
from conftest import KLON, TIMEOUT, run_klon

import klon
from klon.cli.main import main
from klon.core import audio
from klon.core.progress import COMPILE_NOTICE

STOP_BOUND = 30.0  # seconds a signalled run may take to be gone (it takes well under one)


def tone(rate, seconds, channels=1, volts=0.5, seed=0):
    """A chord plus a little noise, one different signal per channel, frames x channels."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    out = [volts * (0.8 * np.sin(2 * np.pi * 110 * (1.5 ** c) * t)
                    + 0.2 * np.sin(2 * np.pi * 330 * t)) + 0.001 * rng.standard_normal(t.size)
           for c in range(channels)]
    return np.stack(out, axis=1).astype(np.float32)


def long_file(path, minutes, rate=44_100, nan_at_end=False):
    """A long mono 16-bit file, written block by block."""
    rng = np.random.default_rng(1)
    frames = int(minutes * 60 * rate)
    subtype = "FLOAT" if nan_at_end else "PCM_16"
    with sf.SoundFile(str(path), "w", rate, 1, subtype) as f:
        for start in range(0, frames, rate * 10):
            block = (0.2 * rng.standard_normal(min(rate * 10, frames - start))).astype(np.float32)
            if nan_at_end and start + block.size >= frames:
                block[-1] = np.nan
            f.write(block)
    return path


def lines(stderr):
    return [line for line in stderr.strip().splitlines() if line != COMPILE_NOTICE]


def one_error(result, *words):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = lines(result.stderr)
    assert line.startswith("klon: error:"), result.stderr
    for word in words:
        assert word in line, result.stderr
    return line


def write(path, x, rate, subtype="FLOAT"):
    sf.write(str(path), x, rate, subtype=subtype)
    return path


def expected(x, rate, **options):
    return klon.Centaur(rate, **options)(x.T)


# --- streaming equals the whole file; gains -----------------------------------------------

def test_streamed_output_is_the_whole_file_result_bit_for_bit(tmp_path):
    rate = 48_000
    x = tone(rate, 3.0, channels=2)  # many blocks, and a last one shorter
    source = write(tmp_path / "in.wav", x, rate)
    result = run_klon("process", source, tmp_path / "out.wav", "--gain", "0.8", "--level", "0.4")
    assert result.returncode == 0, result.stderr
    y, _ = audio.read(tmp_path / "out.wav")
    np.testing.assert_array_equal(y, expected(x, rate, gain=0.8, level=0.4))


def test_neural_and_gain_stage_stream_the_same_as_whole_files(tmp_path):
    rate = 44_100
    x = tone(rate, 2.0, channels=2)
    source = write(tmp_path / "in.wav", x, rate)
    neural = run_klon("process", source, tmp_path / "neural.wav", "--engine", "neural",
                      "--gain", "0.6")
    stage = run_klon("process", source, tmp_path / "stage.wav", "--stage", "gain", "--gain", "0.3",
                     "--input-gain-db", "-6", "--output-gain-db", "3")
    assert neural.returncode == 0 and stage.returncode == 0, neural.stderr + stage.stderr
    np.testing.assert_array_equal(audio.read(tmp_path / "neural.wav")[0],
                                  klon.Centaur(rate, 0.6, engine="neural")(x.T))
    # the gains multiply the input before the stage and its output after it, in float32
    x_in = x.T * np.float32(10 ** (-6 / 20))
    np.testing.assert_array_equal(audio.read(tmp_path / "stage.wav")[0],
                                  klon.GainStage(rate, 0.3)(x_in) * np.float32(10 ** (3 / 20)))


def test_memory_stays_flat_with_the_file_length(tmp_path):
    """Two minutes take no more memory than five seconds: the old whole-file path held about
    13 times the file (here some 270 MB more)."""
    def peak_rss_mb(source):
        child = subprocess.Popen([*KLON, "process", str(source), str(tmp_path / "out.wav")],
                                 stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        assert child.returncode == 0
        return usage.ru_maxrss / 1024

    short = peak_rss_mb(long_file(tmp_path / "short.wav", 5 / 60))
    long = peak_rss_mb(long_file(tmp_path / "long.wav", 2))
    assert long - short < 60, (short, long)


# --- item 3: clipping and loudness are said out loud ---------------------------------------

def test_integer_output_counts_its_clipped_samples(tmp_path):
    rate = 44_100
    x = tone(rate, 1.0, volts=0.5)  # -6 dBFS
    source = write(tmp_path / "in.wav", x, rate)
    result = run_klon("process", source, tmp_path / "out.flac", "--gain", "1", "--level", "1")
    assert result.returncode == 0, result.stderr
    assert sf.info(str(tmp_path / "out.flac")).subtype == "PCM_24"  # not 16-bit
    clipped = int(np.count_nonzero(np.abs(expected(x, rate, gain=1, level=1)) > 1.0))
    assert clipped > 100
    assert f"klon: warning: {clipped} samples" in result.stderr and "CLIPPED" in result.stderr
    assert f"peak in {20 * np.log10(np.max(np.abs(x))):+.1f} dBFS" in result.stderr

    # a float WAV keeps the volts, and says how far above the input they are
    result = run_klon("process", source, tmp_path / "out.wav", "--gain", "1", "--level", "1")
    assert result.returncode == 0 and "CLIPPED" not in result.stderr
    assert re.search(r"warning: '.*out.wav' peaks at \+\d+\.\d dBFS, \d+\.\d dB above the input",
                     result.stderr), result.stderr
    assert np.max(np.abs(audio.read(tmp_path / "out.wav")[0])) > 1.0

    # --subtype chooses the format; an integer one in a WAV clips with the same warning
    result = run_klon("process", source, tmp_path / "out16.wav", "--gain", "1", "--level", "1",
                      "--subtype", "pcm_16")
    assert result.returncode == 0 and f"{clipped} samples" in result.stderr
    assert sf.info(str(tmp_path / "out16.wav")).subtype == "PCM_16"
    one_error(run_klon("process", source, tmp_path / "x.flac", "--subtype", "FLOAT"),
              "FLAC files cannot hold FLOAT")


def test_a_quiet_result_has_no_warning(tmp_path):
    source = write(tmp_path / "in.wav", tone(44_100, 0.5, volts=0.1), 44_100)
    result = run_klon("process", source, tmp_path / "out.wav", "--level", "0.3")
    assert result.returncode == 0
    assert "warning" not in result.stderr and "wrote" in result.stderr


# --- item 4: the output path is checked before any work ------------------------------------

@pytest.mark.parametrize("case", ["missing-folder", "directory", "read-only"])
def test_a_bad_output_path_is_reported_before_processing(tmp_path, case):
    """The input holds a NaN in its last sample, found only by reading it all: the error is
    the output's, so the output was checked first."""
    source = long_file(tmp_path / "in.wav", 0.5, nan_at_end=True)
    target = {"missing-folder": tmp_path / "no-such" / "out.wav",
              "directory": tmp_path / "folder.wav",
              "read-only": tmp_path / "old.wav"}[case]
    if case == "directory":
        target.mkdir()
    if case == "read-only":
        write(target, tone(8_000, 0.1), 8_000)
        target.chmod(0o444)
    before = sorted(os.listdir(tmp_path))
    old = target.read_bytes() if target.is_file() else None
    result = run_klon("process", source, target)
    line = one_error(result)
    assert {"missing-folder": "does not exist", "directory": "directory",
            "read-only": "it is read-only"}[case] in line
    assert "NaN" not in line
    assert sorted(os.listdir(tmp_path)) == before
    if old is not None:
        assert target.read_bytes() == old


def test_nan_mid_file_is_one_line_and_no_output(tmp_path):
    x = tone(44_100, 3.0)
    x[100_000, 0] = np.nan
    source = write(tmp_path / "in.wav", x, 44_100)
    line = one_error(run_klon("process", source, tmp_path / "out.wav"), "NaN/Inf")
    assert "frame 100000" in line
    assert sorted(os.listdir(tmp_path)) == ["in.wav"]


# --- items 4 and 6: Ctrl-C, SIGTERM and SIGKILL --------------------------------------------

def _start_and_wait_for_audio(source, target):
    """`klon process` started, returned once its temporary holds audio (past start-up and the
    first blocks)."""
    # Ctrl-C's default action, as in a terminal: a shell script's background job (a CI runner's,
    # say) starts its children with SIGINT ignored, and Python then keeps it ignored
    child = subprocess.Popen([*KLON, "process", str(source), str(target)],
                             stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and child.poll() is None:
        temporaries = list(target.parent.glob(f".{target.stem}.klon-*.tmp.wav"))
        if temporaries and temporaries[0].exists() and temporaries[0].stat().st_size > 100_000:
            return child, temporaries[0]
        time.sleep(0.05)
    child.kill()
    pytest.fail(f"no temporary with audio appeared: {child.communicate()[1]}")


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_run_at_once_and_leaves_nothing(tmp_path, signum, status):
    source = long_file(tmp_path / "long.wav", 20)
    target = tmp_path / "out.wav"
    child, _ = _start_and_wait_for_audio(source, target)
    try:
        sent = time.monotonic()
        child.send_signal(signum)
        _, stderr = child.communicate(timeout=STOP_BOUND)
        took = time.monotonic() - sent
    finally:
        child.kill()
        child.wait()
    assert child.returncode == status, stderr
    assert took < STOP_BOUND and "Traceback" not in stderr
    assert sorted(os.listdir(tmp_path)) == ["long.wav"]


def test_a_killed_runs_temporary_is_removed_by_the_next_run(tmp_path):
    source = long_file(tmp_path / "long.wav", 20)
    target = tmp_path / "out.wav"
    child, temporary = _start_and_wait_for_audio(source, target)
    child.kill()
    child.wait()
    assert temporary.exists()  # nothing can remove it at once: SIGKILL
    short = write(tmp_path / "short.wav", tone(44_100, 0.2), 44_100)
    result = run_klon("process", short, target)
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path)) == ["long.wav", "out.wav", "short.wav"]


# --- item 10: a slow start says why -------------------------------------------------------

def test_the_compile_notice_comes_on_a_cold_start_only(tmp_path, monkeypatch, capsys):
    """A stamp in the cache folder says the kernels were built by these sources: without it
    the notice comes at once (and the stamp is written after the first block); with it only
    a start slower than WARM_AFTER says anything (numba's own cache was cleared, say)."""
    from klon.cli import process as command
    from klon.core import progress

    monkeypatch.setenv("KLON_CACHE_DIR", str(tmp_path / "cache"))
    source = write(tmp_path / "in.wav", tone(44_100, 0.2, volts=0.1), 44_100)
    assert main(["process", str(source), str(tmp_path / "cold.wav")]) == 0
    assert capsys.readouterr().err.startswith(COMPILE_NOTICE)
    assert main(["process", str(source), str(tmp_path / "warm.wav")]) == 0
    assert COMPILE_NOTICE not in capsys.readouterr().err
    # other kernels (the gain stage alone), another stamp
    assert main(["process", str(source), str(tmp_path / "g.wav"), "--stage", "gain"]) == 0
    assert capsys.readouterr().err.startswith(COMPILE_NOTICE)

    real = command.make_processor

    def slow(args, rate):
        processor = real(args, rate)
        first = processor.process

        def process(block, out=None):
            time.sleep(1.5)
            processor.process = first
            return first(block, out)

        processor.process = process
        return processor

    monkeypatch.setattr(command, "make_processor", slow)
    monkeypatch.setattr(progress, "WARM_AFTER", 0.5)
    assert main(["process", str(source), str(tmp_path / "slow.wav")]) == 0
    assert capsys.readouterr().err.startswith(COMPILE_NOTICE)


@pytest.mark.slow
def test_a_cold_kernel_cache_prints_the_compile_notice(tmp_path):
    source = write(tmp_path / "in.wav", tone(44_100, 0.2), 44_100)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"),
               KLON_CACHE_DIR=str(tmp_path / "klon"))
    result = subprocess.run([*KLON, "process", str(source), str(tmp_path / "out.wav")],
                            env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0
    assert result.stderr.startswith(COMPILE_NOTICE)


# --- progress ------------------------------------------------------------------------------

def test_progress_bar_only_on_a_terminal(tmp_path):
    source = write(tmp_path / "in.wav", tone(44_100, 8.0, volts=0.1), 44_100)
    piped = run_klon("process", source, tmp_path / "piped.wav", "--level", "0.3")
    assert piped.returncode == 0 and "\r" not in piped.stderr
    assert len(lines(piped.stderr)) == 1 and lines(piped.stderr)[0].startswith("wrote ")

    main_fd, terminal = pty.openpty()
    child = subprocess.Popen([*KLON, "process", str(source), str(tmp_path / "tty.wav")],
                             stderr=terminal, stdout=subprocess.DEVNULL)
    os.close(terminal)
    seen = []

    def drain():
        while True:
            try:
                data = os.read(main_fd, 4096)
            except OSError:
                return
            if not data:
                return
            seen.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        assert child.wait(timeout=TIMEOUT) == 0
    finally:
        child.kill()
    reader.join(timeout=10)
    os.close(main_fd)
    text = b"".join(seen).decode(errors="replace")
    assert "\r" in text and "in.wav" in text and "%" in text and "wrote" in text


# --- batch ---------------------------------------------------------------------------------

def test_batch_processes_the_rest_when_one_file_fails(tmp_path):
    inputs = tmp_path / "takes"
    inputs.mkdir()
    x = {"a.wav": tone(44_100, 1.0, channels=2, seed=1), "b.flac": tone(48_000, 0.5, seed=2)}
    write(inputs / "a.wav", x["a.wav"], 44_100)
    write(inputs / "b.flac", x["b.flac"], 48_000, subtype="PCM_24")
    (inputs / "c.wav").write_text("not audio\n" * 20)
    extra = write(tmp_path / "d.wav", tone(44_100, 0.3, seed=3), 44_100)
    out = tmp_path / "out"
    result = run_klon("process", inputs, extra, "--out-dir", out, "--jobs", "2",
                      "--gain", "0.7")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    text = lines(result.stderr)
    assert any("c.wav" in line and line.startswith("klon: error:") for line in text)
    assert any(line.startswith("processed 3 of 4 file(s)") for line in text)
    assert text[-1] == "klon: error: 1 of 4 file(s) failed (see above)"
    assert sorted(os.listdir(out)) == ["a.wav", "b.flac", "d.wav"]
    y, _ = audio.read(out / "a.wav")
    np.testing.assert_array_equal(y, klon.Centaur(44_100, 0.7)(x["a.wav"].T))
    assert sf.info(str(out / "b.flac")).samplerate == 48_000


def test_batch_refusals(tmp_path):
    a = write(tmp_path / "a.wav", tone(44_100, 0.1), 44_100)
    (tmp_path / "sub").mkdir()
    b = write(tmp_path / "sub" / "a.wav", tone(44_100, 0.1), 44_100)
    one_error(run_klon("process", a, b, tmp_path / "c.wav"), "--out-dir")
    one_error(run_klon("process", a, b, "--out-dir", tmp_path / "out"), "two inputs named 'a.wav'")
    one_error(run_klon("process", a, "--out-dir", tmp_path / "no" / "out"), "does not exist")
    # the inputs' own folder: every output would be its input
    result = run_klon("process", a, "--out-dir", tmp_path)
    assert result.returncode == 2 and "overwrite the input" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["a.wav", "sub"]  # no folder made for a refusal


def test_batch_of_one_job_runs_in_process(tmp_path):
    paths = [write(tmp_path / f"{name}.wav", tone(44_100, 0.2, seed=i), 44_100)
             for i, name in enumerate("xyz")]
    result = run_klon("process", *paths, "--out-dir", tmp_path / "out", "--jobs", "1")
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["x.wav", "y.wav", "z.wav"]
    assert lines(result.stderr)[-1].startswith("processed 3 of 3 file(s)")
