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


# the one difference in the exported C: a comment names the module the component values come
# from, which the re-shape moved
MOVED = {b"klon.pedal.components": b"klon.circuit.components"}


def test_exported_c_files_are_unchanged(rendered):
    _, files = rendered
    for new, old in MOVED.items():
        files = {name: content.replace(new, old) for name, content in files.items()}
    hashes = render.sha256(files)
    assert [f"{k} {v}" for k, v in hashes.items()] == list(GOLDEN["export_hashes"])
