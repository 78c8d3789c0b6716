"""The re-shaped package reproduces, bit for bit, what `klon process` and `klon export c` gave
before the re-shape (tests/golden/golden.npz, rendered by tests/golden/render.py from a6bbb6c)."""
from pathlib import Path

import numpy as np
import pytest
from golden import render

GOLDEN = np.load(Path(__file__).with_name("golden") / "golden.npz")


@pytest.fixture(scope="module")
def rendered():
    return render.render()


@pytest.mark.parametrize("name", [case[0] for case in render.CASES])
def test_klon_process_is_unchanged(rendered, name):
    arrays, _ = rendered
    np.testing.assert_array_equal(arrays[name], GOLDEN[name])


@pytest.mark.parametrize("name", ["c-neural-pedal", "c-neural-gain", "c-circuit-gain"])
def test_exported_c_runs_as_before(rendered, name):
    arrays, _ = rendered
    np.testing.assert_array_equal(arrays[name], GOLDEN[name])


def test_exported_c_code_is_unchanged(rendered):
    """The exported C, its comments aside, is what a6bbb6c exported. (The comments name the
    Python modules each part mirrors, and those moved; the golden file holds both hashes.)"""
    _, files = rendered
    code = render.sha256({name: render.code_only(content) for name, content in files.items()})
    assert [f"{k} {v}" for k, v in code.items()] == list(GOLDEN["export_code_hashes"])
    assert list(files) == [entry.split()[0] for entry in GOLDEN["export_hashes"]]
