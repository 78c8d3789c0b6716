"""What several test files share: the reference data, test signals, and `klon` run as a user
runs it. Plain functions and constants, imported as `from conftest import ...`.

The reference data (../shared/data or $KLON_DATA, klon.core.paths.find_data) holds the DI clips
and their LTspice targets (klon-ltspice) and the published models (chowcentaur-models). Tests
of the project's claims fail without it; tests that only use it where it is there are marked
`needs_data` and skip.
"""
import fcntl
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from klon.core.paths import find_data

DATA = find_data()
REFERENCE = DATA / "klon-ltspice" if DATA else None
PUBLISHED = DATA / "chowcentaur-models" if DATA else None
REFERENCE_RATE = 44_100
needs_data = pytest.mark.skipif(DATA is None, reason="reference data (../shared/data) not found")

KLON = (sys.executable, "-m", "klon.cli")
TIMEOUT = 300  # seconds: start-up, imports and compiling cost a few; a hang must not stall CI


def reference_path(*parts: str) -> Path:
    """A path in the reference data; the test fails (it does not skip) where there is none."""
    if DATA is None:
        pytest.fail("reference data not found: put it in ../shared/data or set $KLON_DATA")
    return DATA.joinpath(*parts)


def _clip(folder: str, name: str) -> np.ndarray:
    raw, rate = sf.read(reference_path("klon-ltspice", folder, f"{name}.wav"), dtype="int16")
    assert rate == REFERENCE_RATE
    return raw.astype(np.float64) / 2 ** 15


def di_clip(*names: str) -> np.ndarray:
    """DI clips of the reference data end to end (e.g. "sample0"), float64 volts at the
    input: x = int16 / 2^15, the data's convention."""
    return np.concatenate([_clip("DataIn", name) for name in names])


def target_clip(gain: float, *names: str) -> np.ndarray:
    """The LTspice targets of those clips at a Gain (0..1), float64 volts at the output:
    y = 2 int16 / 2^15 (the files hold half the voltage)."""
    return np.concatenate([2.0 * _clip(f"Data{round(100 * gain)}", name) for name in names])


def sine(freq: float, seconds: float, amplitude: float,
         sample_rate: float = REFERENCE_RATE) -> np.ndarray:
    """A float32 sine from phase 0."""
    n = int(seconds * sample_rate)
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(n) / sample_rate)).astype(np.float32)


def noise(shape, scale: float = 1.0, seed: int = 0) -> np.ndarray:
    """Seeded white Gaussian noise, float64: full band, so every sample and every delay
    matters."""
    return scale * np.random.default_rng(seed).standard_normal(shape)


def run_klon(*args, command=KLON, cwd=None,
             timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """`klon ARGS` run as a user runs it: its own process, stdout and stderr captured as
    text."""
    return subprocess.run([*map(str, command), *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, check=False)


def built_plugins(tmp_path_factory) -> Path:
    """The plugins (`klon export plugin`: every format and channel layout) built once per test
    run and shared by the worker processes: the first to ask builds them, the others wait."""
    from klon.export.plugin.build import export_plugin
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # this run's own
    out, done = root / "klon-plugins", root / "klon-plugins.built"
    with open(root / "klon-plugins.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            export_plugin(out, force=True)
            done.touch()
    return out
