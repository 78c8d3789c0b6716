"""The plumbing every output goes through: the atomic writer and the C literals."""
import os

import numpy as np
import pytest

from klon.core.errors import KlonError
from klon.core.files import atomic_path, atomic_write
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
