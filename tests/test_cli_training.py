"""`klon dataset`, `klon train` and `klon plot`, run as a user runs them (separate processes)."""
import json

import numpy as np
import pytest
import soundfile as sf
from conftest import REFERENCE, run_klon

from klon.core.errors import KlonError
from klon.dsp.synth import guitar_phrases
from klon.pedal import GainStage
from klon.tools import aliasing
from klon.train.dataset import render
from klon.train.jobs import load_data
from klon.train.trainer import TrainConfig, Trainer


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("di")
    for seed in range(2):
        sf.write(folder / f"take{seed}.wav", guitar_phrases(44100, 1.2, 0.4, seed=seed), 44100,
                 subtype="PCM_24")
    return folder


@pytest.fixture(scope="module")
def rendered(recordings, tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "gain50"
    result = run_klon("dataset", recordings, "--gain", "0.5", "--synth", "1", "--out", out)
    assert result.returncode == 0, result.stderr
    return out


def test_dataset_renders_the_circuit_gain_stage(rendered, recordings):
    manifest = json.loads((rendered / "dataset.json").read_text())
    assert manifest["gain"] == 0.5 and manifest["diode"] == "1n34a"
    assert manifest["sample_rate"] == 44100 and manifest["clips"] == 3  # 2 takes + 1 s of synth
    x, _ = sf.read(recordings / "take1.wav", dtype="float32")
    y, rate = sf.read(rendered / "target" / "take1.wav", dtype="float32")
    assert rate == 44100 and sf.info(str(rendered / "target" / "take1.wav")).subtype == "FLOAT"
    expected = GainStage(44100, 0.5)(x.astype(np.float64).reshape(1, -1))[0]
    assert np.max(np.abs(y - expected)) < 1e-6
    assert np.max(np.abs(y)) > 1.0  # volts, not clipped to a file's full scale


def test_dataset_renders_band_limited_targets_at_4x(recordings, tmp_path):
    out = render([recordings / "take0.wav"], tmp_path / "bl", 1.0, oversampling=4)
    assert json.loads((out / "dataset.json").read_text())["oversampling"] == 4
    x, _ = sf.read(recordings / "take0.wav", dtype="float32")
    y, _ = sf.read(out / "target" / "take0.wav", dtype="float32")
    x = x.astype(np.float64).reshape(1, -1)
    assert np.max(np.abs(y - GainStage(44100, 1.0, oversampling=4)(x)[0])) < 1e-6
    assert np.max(np.abs(y - GainStage(44100, 1.0)(x)[0])) > 1e-3  # not the default render


def test_band_limited_targets_hold_far_less_aliasing(tmp_path):
    # a loud 4 kHz tone at Gain 1: its harmonics above Nyquist fold back in the default render;
    # the band-limited one is the circuit at 176.4 kHz, 4x oversampled, low-passed back down
    k = aliasing.tone_bin(4000, 44100)
    sf.write(tmp_path / "tone.wav", aliasing.sine(k, 22050 + aliasing.SIZE, amplitude=1.0,
                                                  fade=2205), 44100, subtype="FLOAT")
    sars = {}
    for band_limited in (False, True):
        out = render([tmp_path / "tone.wav"], tmp_path / f"bl{band_limited}", 1.0,
                     tone_seconds=2, band_limited=band_limited)
        y, _ = sf.read(out / "target" / "tone.wav")
        sars[band_limited] = aliasing.analyse(y[-aliasing.SIZE:], k).sar
        manifest = json.loads((out / "dataset.json").read_text())
        assert manifest["band_limited"] == band_limited and manifest["tone_seconds"] == 2
        assert sorted(p.name for p in (out / "input").iterdir()) == \
            ["tone.wav", "tone000.wav", "tone001.wav"]
    assert sars[True] > sars[False] + 20, sars  # measured: 35 and 60 dB


def test_dataset_never_writes_into_an_existing_folder(rendered, recordings):
    before = sorted(p.name for p in (rendered / "target").iterdir())
    result = run_klon("dataset", recordings, "--out", rendered)
    assert result.returncode == 2
    assert "already exists" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in (rendered / "target").iterdir()) == before


def test_train_writes_a_model_a_checkpoint_and_resumes(rendered, tmp_path):
    out = tmp_path / "m.json"
    common = ["--hidden", "4", "--batch-size", "4", "--validation", "1", "--warmup", "512"]
    result = run_klon("train", rendered, "--epochs", "2", "--out", out, *common)
    assert result.returncode == 0, result.stderr
    assert "validation ESR" in result.stderr
    document = json.loads(out.read_text())
    meta = document["metadata"]
    assert meta["gain"] == 0.5 and meta["hidden_size"] == 4 and meta["sample_rate"] == 44100
    assert meta["epochs"] == 2 and len(meta["history"]["epoch"]) == 2
    assert 0 < meta["validation_esr"] < 1.5
    assert (tmp_path / "m.json.ckpt").exists()
    result = run_klon("train", rendered, "--epochs", "3", "--out", out, "--resume", *common)
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["metadata"]["epochs"] == 3
    result = run_klon("train", rendered, "--epochs", "3", "--out", out, "--resume", "--hidden", "5",
                  "--batch-size", "4", "--validation", "1", "--warmup", "512")
    assert result.returncode == 2 and "different settings (hidden)" in result.stderr

    # fine-tuning starts from the file's weights: before any epoch it scores what the file did
    data = load_data(rendered, None)
    start = Trainer(data, TrainConfig(hidden=4, batch_size=4, validation=1, warmup=512,
                                      init=str(out)), log=None)
    assert start.validate()[1] == pytest.approx(
        json.loads(out.read_text())["metadata"]["validation_esr"], rel=1e-5)
    with pytest.raises(KlonError, match="GRU-4 with 1 input.*GRU-5"):
        Trainer(data, TrainConfig(hidden=5, validation=1, init=str(out)), log=None)
    result = run_klon("train", rendered, "--epochs", "1", "--out", tmp_path / "n.json",
                      "--init", tmp_path, "--gain", "0.25", *common)
    assert result.returncode == 2 and "no model for gain 0.25" in result.stderr

    plots = tmp_path / "plots"
    result = run_klon("plot", out, "--data", rendered, "--out", plots)
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in plots.iterdir())
    assert names == ["m-spectrum.png", "m-time.png", "m-training.png"]
    assert all((plots / n).stat().st_size > 10_000 for n in names)


def test_train_refuses_bad_requests(tmp_path, recordings):
    if REFERENCE is not None:
        result = run_klon("train", REFERENCE, "--out", tmp_path / "m.json")
        assert result.returncode == 2 and "--gain" in result.stderr
    x = guitar_phrases(44100, 1.0, 0.3)
    sf.write(tmp_path / "in.wav", x, 44100)
    sf.write(tmp_path / "target.wav", x[:-100], 44100)
    result = run_klon("train", "--input", tmp_path / "in.wav", "--target", tmp_path / "target.wav",
                  "--out", tmp_path / "m.json")
    assert result.returncode == 2
    assert "same length" in result.stderr and "Traceback" not in result.stderr
    result = run_klon("train", tmp_path / "nowhere", "--out", tmp_path / "m.json")
    assert result.returncode == 2 and "no such file" in result.stderr
    assert not (tmp_path / "m.json").exists()
