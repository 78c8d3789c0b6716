"""The plumbing every output goes through: the atomic writer and the C literals."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from klon.core.errors import KlonError
from klon.core.files import atomic_path, atomic_write, temporary_name
from klon.export.c99.literals import c_double, c_float, c_literal, c_table, fill_template


def test_atomic_write_replaces_whole_files_with_normal_permissions(tmp_path):
    path = tmp_path / "out.txt"
    assert atomic_write(path, "first\n") == path
    witness = tmp_path / "witness.txt"
    os.link(path, witness)
    atomic_write(path, b"second\n")
    assert path.read_bytes() == b"second\n"
    assert witness.read_text() == "first\n"  # renamed over, not rewritten in place
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt", "witness.txt"]


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path):
    path = tmp_path / "figure.png"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(path) as temporary:
        assert temporary.parent == tmp_path and temporary.suffix == ".png"
        temporary.write_bytes(b"half")
        raise RuntimeError("the writer failed")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["figure.png"]


def test_c_literals_read_back_exactly():
    for value in (1.0, 0.1, -2.5e-9, 1e16, 3.0517578125e-05, np.float32(0.7)):
        assert float(c_double(value)) == float(value)
        assert np.float32(c_float(value)[:-1]) == np.float32(value)
        assert c_float(value).endswith("f")
    assert c_double(2) == "2.0" and c_float(1) == "1.0f" and c_float(0.1) == "0.100000001f"
    assert c_literal(0.1, "float") == "0.1f" and c_literal(0.1) == "0.1"
    assert c_table("t", [1, 2, 3, 4, 5], "float") == ("static const float t[5] = {\n"
                                                      "    1.0f, 2.0f, 3.0f, 4.0f,\n"
                                                      "    5.0f\n};")
    for bad in (float("nan"), float("inf")):
        with pytest.raises(KlonError, match="no C literal"):
            c_double(bad)


def test_templates_must_be_filled(tmp_path):
    template = tmp_path / "x.c.in"
    template.write_text("/* @param n: @N@ */ int n = @N@; float k = @K@;\n")
    assert fill_template(template, {"N": 3, "K": "1.0f"}) == \
        "/* @param n: 3 */ int n = 3; float k = 1.0f;\n"
    with pytest.raises(KlonError, match="@K@"):
        fill_template(template, {"N": 3})


# --- temporaries a killed run left, SIGTERM, read-only destinations ------------------------

def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_temporaries_are_named_for_the_destination_and_the_writer(tmp_path):
    name = temporary_name(tmp_path / "take.wav").name
    assert name.startswith(f".take.klon-{os.getpid()}-") and name.endswith(".tmp.wav")


def test_stale_temporaries_of_dead_runs_are_removed_and_nothing_else(tmp_path):
    dead = _dead_pid()
    stale = tmp_path / f".out.klon-{dead}-0123abcd.tmp.wav"
    alive = tmp_path / ".out.klon-1-0123abcd.tmp.wav"  # pid 1 is always alive
    other_destination = tmp_path / f".other.klon-{dead}-0123abcd.tmp.wav"
    not_ours = tmp_path / f".out.{dead}.tmp.wav"
    for path in (stale, alive, other_destination, not_ours):
        path.write_bytes(b"half")
    atomic_write(tmp_path / "out.wav", b"whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [alive.name, other_destination.name, not_ours.name, "out.wav"])


def test_read_only_destination_is_refused(tmp_path):
    path = tmp_path / "keep.txt"
    path.write_text("keep me\n")
    path.chmod(0o444)
    with pytest.raises(KlonError, match="cannot write '.*keep.txt': it is read-only"):
        atomic_write(path, "new\n")
    assert path.read_text() == "keep me\n"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_destination_checks_come_before_any_file(tmp_path):
    with pytest.raises(KlonError, match="is a directory"):
        atomic_write(tmp_path, "x")
    with pytest.raises(KlonError, match="does not exist"):
        atomic_write(tmp_path / "missing" / "x.txt", "x")
    assert list(tmp_path.iterdir()) == []


def test_sigterm_while_writing_removes_the_temporary(tmp_path):
    """SIGTERM ends a run mid-write with status 143, and its temporary goes with it."""
    script = (
        "import sys, time\n"
        "from klon.core.files import atomic_path\n"
        "with atomic_path(sys.argv[1]) as temporary:\n"
        "    temporary.write_bytes(b'half')\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "out.bin")],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "writing"
        assert len(list(tmp_path.iterdir())) == 1
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        child.kill()
        child.wait()
    assert list(tmp_path.iterdir()) == []
