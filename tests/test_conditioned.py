"""Gain-conditioned models: `klon dataset --gain moving`, training with a knob input, the files,
and the engine feeding them the gliding Gain."""
import json

import numpy as np
import pytest
import soundfile as sf
from conftest import run_klon

from klon.dsp.synth import guitar_phrases
from klon.neural import ModelBank
from klon.neural.model_file import read_model, write_model
from klon.pedal import GainStage
from klon.train.dataset import along_path, gain_path


@pytest.fixture(scope="module")
def moving(tmp_path_factory):
    recordings = tmp_path_factory.mktemp("di")
    for seed in range(2):
        sf.write(recordings / f"take{seed}.wav", guitar_phrases(44100, 1.0, 0.4, seed=seed),
                 44100, subtype="PCM_24")
    out = tmp_path_factory.mktemp("ds") / "moving"
    result = run_klon("dataset", recordings, "--gain", "moving", "--takes", "3", "--out", out)
    assert result.returncode == 0, result.stderr
    return out


def test_a_moving_dataset_has_the_gain_as_a_second_input_channel(moving):
    manifest = json.loads((moving / "dataset.json").read_text())
    assert manifest["gain"] is None and manifest["knobs"] == ["gain"]
    assert manifest["takes"] == 3 and manifest["clips"] == 6
    paths = []
    for name in sorted(p.name for p in (moving / "input").iterdir()):
        x, rate = sf.read(moving / "input" / name, dtype="float32", always_2d=True)
        y, _ = sf.read(moving / "target" / name, dtype="float32")
        assert rate == 44100 and x.shape == (44100, 2) and y.shape == (44100,)
        assert 0.0 <= x[:, 1].min() and x[:, 1].max() <= 1.0
        paths.append(x[:, 1])
    # takes of one clip follow different paths
    assert len({round(float(np.mean(p)), 6) for p in paths}) == len(paths)


def test_the_circuit_follows_the_gain_path():
    x = guitar_phrases(44100, 1.0, 0.3, seed=3).astype(np.float32)
    turn = 10_000
    path = np.full(len(x), 0.2, np.float32)
    path[turn:] = 0.8
    y = along_path(GainStage(44100, 0.5), x, path)
    held = GainStage(44100, 0.2)(x.astype(np.float64)[None])[0]
    high = GainStage(44100, 0.8)(x.astype(np.float64)[None])[0]
    # (the oversampling filters reach a few samples ahead of the turn)
    np.testing.assert_allclose(y[:turn - 32], held[:turn - 32], rtol=0, atol=1e-6)
    assert np.max(np.abs(y[turn + 4000:] - held[turn + 4000:])) > 0.1
    # once the turn has passed through the circuit's memory, the output is Gain 0.8's
    late = slice(turn + 15_000, None)
    assert np.max(np.abs(y[late] - high[late])) < 0.01 * np.max(np.abs(high[late]))


def test_gain_paths_cover_the_knob_and_move_like_it():
    rng = np.random.default_rng(0)
    paths = [gain_path(rng, 22050, 44100) for _ in range(200)]
    values = np.concatenate(paths)
    assert values.min() == 0.0 and values.max() == 1.0
    assert np.histogram(values, bins=10, range=(0, 1))[0].min() > 0.02 * len(values)
    moving = [p for p in paths if p.min() != p.max()]
    assert 0.4 * len(paths) < len(moving) < 0.8 * len(paths)
    # no jumps: nothing moves much faster than the knob's own glide (a full turn in 50 ms)
    assert max(np.max(np.abs(np.diff(p))) for p in moving) < 1.5 / 2205


def test_the_share_of_the_knobs_ends_is_chosen(moving, tmp_path):
    def at_ends(ends):
        rng = np.random.default_rng(1)
        held = [p for p in (gain_path(rng, 2000, 44100, ends) for _ in range(400))
                if p.min() == p.max()]
        return np.mean([p[0] in (0.0, 1.0) for p in held])

    assert at_ends(0.0) == 0.0 and at_ends(1.0) == 1.0
    assert 0.05 < at_ends(0.1) < 0.2 < 0.4 < at_ends(0.5) < 0.6
    assert json.loads((moving / "dataset.json").read_text())["ends"] == 0.1  # the default
    result = run_klon("dataset", moving / "input", "--gain", "moving", "--ends", "1.5",
                      "--out", tmp_path / "x")
    assert result.returncode == 2 and "--ends must be a share in 0..1, got 1.5" in result.stderr
    assert not (tmp_path / "x").exists()


def test_a_conditioned_model_trains_and_runs_in_the_engine(moving, tmp_path):
    out = tmp_path / "cond.json"
    result = run_klon("train", moving, "--epochs", "4", "--hidden", "4", "--batch-size", "4",
                      "--validation", "1", "--warmup", "512", "--zero-start", "256",
                      "--out", out)
    assert result.returncode == 0, result.stderr
    document = json.loads(out.read_text())
    assert document["in_shape"] == [None, None, 2]
    meta = document["metadata"]
    assert meta["gain"] is None and meta["inputs"] == ["audio", "gain"]
    assert meta["config"]["zero_start"] == 256
    history = meta["history"]["train_esr"]
    assert history[-1] < history[0]  # the loss falls

    spec = read_model(out)
    assert spec.inputs == 2 and spec.gain is None
    write_model(tmp_path / "again.json", spec)
    again = read_model(tmp_path / "again.json")
    for name in ("kernel", "recurrent", "bias", "dense_weights"):
        np.testing.assert_array_equal(getattr(again, name), getattr(spec, name))

    # the engine feeds it the Gain: different Gains give different outputs; silence gives 0 V
    # on the grid where its silence output is known, within 0.1 mV between grid points
    x = guitar_phrases(44100, 0.3, 0.3, seed=5).astype(np.float32)
    low, high = ModelBank([out], 0.0)(x), ModelBank([out], 1.0)(x)
    assert np.all(np.isfinite(low)) and np.max(np.abs(low - high)) > 1e-3
    silence = np.zeros(4096, np.float32)
    for gain in (0.0, 0.375, 1.0):
        assert np.max(np.abs(ModelBank([out], gain)(silence))) < 1e-6
    assert np.max(np.abs(ModelBank([out], 0.37)(silence))) < 1e-4

    # klon plot draws it on a clip of the data it trained on, along that clip's Gain path
    plots = tmp_path / "plots"
    result = run_klon("plot", out, "--out", plots)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in plots.iterdir()) == [
        "cond-spectrum.png", "cond-time.png", "cond-training.png"]


def test_bad_knob_channels_and_requests_are_refused(moving, tmp_path):
    bad = tmp_path / "bad"
    (bad / "input").mkdir(parents=True)
    (bad / "target").mkdir()
    (bad / "dataset.json").write_text(json.dumps({"knobs": ["gain"], "gain": None}))
    x = guitar_phrases(44100, 0.5, 0.3).astype(np.float32)
    sf.write(bad / "input" / "a.wav", np.stack([x, np.full_like(x, 1.5)], axis=1), 44100,
             subtype="FLOAT")
    sf.write(bad / "target" / "a.wav", x, 44100, subtype="FLOAT")
    result = run_klon("train", bad, "--out", tmp_path / "m.json", "--epochs", "1")
    assert result.returncode == 2 and "values in 0..1" in result.stderr
    assert "Traceback" not in result.stderr

    result = run_klon("train", moving, "--gain", "0.5", "--out", tmp_path / "m.json")
    assert result.returncode == 2 and "train it without --gain" in result.stderr
    result = run_klon("dataset", moving / "input", "--gain", "moving,0.5",
                      "--out", tmp_path / "x")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert not (tmp_path / "m.json").exists()
