"""The README's main job: `klon demo` runs a guitar riff through both engines."""
import numpy as np
import soundfile as sf
from conftest import run_klon

from klon.core.metrics import esr


def test_demo_writes_both_engines_and_a_plot(tmp_path):
    result = run_klon("demo", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    settings = ("clean-boost", "drive", "edge")
    assert names == sorted(["demo.png", "input.wav"] + [f"{e}-{s}.wav" for e in
                                                        ("circuit", "neural") for s in settings])
    assert (tmp_path / "demo.png").stat().st_size > 50_000
    riff, rate = sf.read(tmp_path / "input.wav")
    assert rate == 44100 and len(riff) == 4 * 44100
    for setting in settings:
        circuit, _ = sf.read(tmp_path / f"circuit-{setting}.wav")
        neural, _ = sf.read(tmp_path / f"neural-{setting}.wav")
        assert circuit.shape == neural.shape == riff.shape
        assert np.all(np.isfinite(neural)) and np.max(np.abs(neural)) > np.max(np.abs(riff))
        assert esr(circuit, neural) < 0.01  # "non-ML and ML sound very similar"
        assert f"{setting}: neural vs circuit ESR" in result.stderr
