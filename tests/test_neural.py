"""The neural gain stage's learning side: fused kernels against torch, training, checkpoints,
export, data checks."""
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from klon.core.errors import KlonError
from klon.core.metrics import clip_esr
from klon.core.paths import find_data
from klon.neural.model_file import model_document
from klon.train import data as datasets
from klon.train import export
from klon.train.dataset import render_gains
from klon.train.jobs import model_file_name, model_paths, train_gains
from klon.train.loss import esr_loss
from klon.train.nets import GainStageNet
from klon.train.trainer import TrainConfig, Trainer

torch.set_num_threads(1)  # tiny tensors: OpenMP threads only spin, badly on a busy machine
DATA = find_data()
REFERENCE = DATA / "klon-ltspice" if DATA else None
needs_data = pytest.mark.skipif(DATA is None, reason="reference data (../shared/data) not found")


def _scaled(model, factor):
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(factor)  # larger weights: gates saturate, the hard cases for the kernels
    return model


@pytest.mark.parametrize("batch, inputs, hidden", [(1, 1, 8), (13, 1, 8), (37, 2, 5), (16, 1, 16)])
def test_fused_gru_equals_torch_forward_and_gradients(batch, inputs, hidden):
    torch.manual_seed(batch)
    model = _scaled(GainStageNet(hidden, "gru", inputs), 2.0)
    x = 0.5 * torch.randn(batch, 300, inputs)
    h0 = 0.3 * torch.randn(batch, hidden)
    results = []
    for fused in (True, False):
        model.fused = fused
        model.zero_grad()
        h = h0.clone().requires_grad_(True)
        y, last = model(x, h)
        (y ** 2).mean().backward()
        results.append((y.detach(), last.detach(), [p.grad.clone() for p in model.parameters()],
                        h.grad.clone()))
    (y1, l1, g1, h1), (y2, l2, g2, h2) = results
    assert torch.allclose(y1, y2, atol=2e-6)
    assert torch.allclose(l1, l2, atol=2e-6)
    for a, b in zip(g1, g2, strict=True):
        assert torch.allclose(a, b, atol=1e-5 * b.abs().max() + 1e-9)
    assert torch.allclose(h1, h2, atol=1e-5 * h2.abs().max() + 1e-9)


def test_fused_gru_carries_state_across_calls():
    torch.manual_seed(0)
    model = GainStageNet(8)
    x = torch.randn(4, 500, 1)
    whole, _ = model(x)
    first, state = model(x[:, :123])
    second, _ = model(x[:, 123:], state)
    assert torch.allclose(whole, torch.cat([first, second], dim=1), atol=1e-6)


def test_esr_loss_is_the_seeds_equation_7_and_scores_agree():
    torch.manual_seed(1)
    target = torch.randn(3, 100)
    prediction = target + 0.1 * torch.randn(3, 100)
    expected = torch.sum((target - prediction) ** 2) / torch.sum(target ** 2)
    assert torch.isclose(esr_loss(prediction, target), expected)
    per_clip, pooled = clip_esr(prediction.numpy(), target.numpy())
    assert per_clip.shape == (3,)
    assert pooled == pytest.approx(float(expected), rel=1e-5)
    # a pure DC offset is penalised more with the DC term, a scaled copy is not affected by it
    offset = target + 0.05
    assert esr_loss(offset, target, dc_weight=1.0) > esr_loss(offset, target)
    assert torch.isclose(esr_loss(0.9 * target, target, dc_weight=1.0),
                         esr_loss(0.9 * target, target, dc_weight=0.0), rtol=0.2)
    # pre-emphasis weights highs: a low-frequency error counts less
    t = torch.linspace(0, 1, 1000)[None]
    slow_error = torch.sin(2 * np.pi * 3 * t)
    sig = torch.sin(2 * np.pi * 300 * t)
    noisy = sig + 0.1 * slow_error
    assert esr_loss(noisy, sig, emphasis=0.95) < esr_loss(noisy, sig)


def _numpy_gru_dense(document, x):
    """The model file's maths exactly as ../shared/data/README.md writes it (Keras reset_after,
    gates z | r | h), float64: an implementation independent of torch and of klon."""
    gru, dense = document["layers"]
    kernel, recurrent, bias = (np.asarray(w, np.float64) for w in gru["weights"])
    w, b = (np.asarray(v, np.float64) for v in dense["weights"])
    hidden = recurrent.shape[0]

    def sig(v):
        return 1.0 / (1.0 + np.exp(-v))

    h = np.zeros(hidden)
    out = np.empty(len(x))
    for n, sample in enumerate(x):
        xk = sample * kernel[0] + bias[0]
        hk = h @ recurrent + bias[1]
        z = sig(xk[:hidden] + hk[:hidden])
        r = sig(xk[hidden:2 * hidden] + hk[hidden:2 * hidden])
        c = np.tanh(xk[2 * hidden:] + r * hk[2 * hidden:])
        h = z * h + (1.0 - z) * c
        out[n] = h @ w[:, 0] + b[0]
    return out


def test_exported_model_runs_the_same_in_plain_numpy(tmp_path):
    torch.manual_seed(3)
    model = _scaled(GainStageNet(8), 1.5)
    noise = np.random.default_rng(0).standard_normal(3000)
    x = 0.4 * np.sin(np.linspace(0, 60, 3000)) + 0.1 * noise
    with torch.no_grad():
        expected = model(torch.from_numpy(x.astype(np.float32))[None, :, None])[0][0].numpy()
    export.save(tmp_path / "m.json", model, {"gain": 0.5, "sample_rate": 44100})
    document = json.loads((tmp_path / "m.json").read_text())
    assert document["in_shape"] == [None, None, 1]
    assert [layer["type"] for layer in document["layers"]] == ["gru", "dense"]
    shapes = [np.asarray(w).shape for w in document["layers"][0]["weights"]]
    assert shapes == [(1, 24), (8, 24), (2, 24)]
    assert document["metadata"]["hidden_size"] == 8 and document["metadata"]["gain"] == 0.5
    y = _numpy_gru_dense(document, x)
    assert np.max(np.abs(y - expected)) < 1e-5
    # and back: the same weights, bit for bit
    loaded, metadata = export.load(tmp_path / "m.json")
    for a, b in zip(model.parameters(), loaded.parameters(), strict=True):
        assert torch.equal(a, b)
    assert metadata["sample_rate"] == 44100


@needs_data
def test_the_original_plugins_files_load_and_write_back_unchanged():
    for gain in (0, 50, 100):
        path = DATA / "chowcentaur-models" / f"centaur_{gain}.json"
        original = json.loads(path.read_text())
        model, metadata = export.load(path)
        assert metadata == {}
        again = model_document(export.to_spec(model))
        for mine, theirs in zip(again["layers"], original["layers"], strict=True):
            assert mine["type"] == theirs["type"] and mine["shape"] == theirs["shape"]
            for a, b in zip(mine["weights"], theirs["weights"], strict=True):
                assert np.array_equal(np.float32(a), np.float32(b))


def test_lstm_models_export_and_reload(tmp_path):
    torch.manual_seed(4)
    model = GainStageNet(6, "lstm")
    export.save(tmp_path / "l.json", model, {})
    loaded, _ = export.load(tmp_path / "l.json")
    x = torch.randn(2, 200, 1)
    with torch.no_grad():
        assert torch.allclose(model(x)[0], loaded(x)[0], atol=1e-6)


def test_bad_model_files_are_refused(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(KlonError, match="cannot read model"):
        export.load(tmp_path / "broken.json")
    with pytest.raises(KlonError, match="no such file"):
        export.load(tmp_path / "missing.json")
    torch.manual_seed(0)
    document = model_document(export.to_spec(GainStageNet(8)))
    document["layers"][0]["weights"][1] = document["layers"][0]["weights"][1][:4]
    (tmp_path / "short.json").write_text(json.dumps(document))
    with pytest.raises(KlonError, match="short.json.*recurrent weights have shape"):
        export.load(tmp_path / "short.json")
    document["layers"][0]["type"] = "conv1d"
    (tmp_path / "conv.json").write_text(json.dumps(document))
    with pytest.raises(KlonError, match="unsupported layer type 'conv1d'"):
        export.load(tmp_path / "conv.json")


# --- data -------------------------------------------------------------------------------------

def _write_pairs(folder, pairs, rate=44100, subtype="FLOAT"):
    (folder / "input").mkdir(parents=True)
    (folder / "target").mkdir()
    for name, (x, y) in pairs.items():
        sf.write(folder / "input" / f"{name}.wav", x, rate, subtype=subtype)
        sf.write(folder / "target" / f"{name}.wav", y, rate, subtype=subtype)
    return folder


def _pair(seconds=0.6, delay=0, seed=0, rate=44100):
    rng = np.random.default_rng(seed)
    x = (0.3 * rng.standard_normal(int(seconds * rate))).astype(np.float32)
    y = np.tanh(3 * x)
    if delay > 0:
        y = np.r_[np.zeros(delay), y[:-delay]]
    elif delay < 0:
        y = np.r_[y[-delay:], np.zeros(-delay)]
    return x, y.astype(np.float32)


def test_folders_are_cut_into_segments_with_context(tmp_path):
    folder = _write_pairs(tmp_path / "d", {"a": _pair(1.2), "b": _pair(0.3, seed=1)})
    data = datasets.load(folder)
    length = int(datasets.SEGMENT_SECONDS * 44100)
    assert data.score_start == datasets.CONTEXT
    assert data.inputs.shape == (4, datasets.CONTEXT + length)  # a: 3 segments, b: 1
    assert data.names[:3] == ["a@0s", "a@0.5s", "a@1s"]
    x, _ = _pair(1.2)
    # the second segment's context is the end of the first: the signal runs on
    assert np.array_equal(data.inputs[1, :datasets.CONTEXT], x[length - datasets.CONTEXT:length])
    assert np.array_equal(data.inputs[1, datasets.CONTEXT:], x[length:2 * length])
    assert not data.warnings


def test_bad_pairs_get_clear_errors(tmp_path):
    x, y = _pair()
    folder = _write_pairs(tmp_path / "len", {"a": (x, y[:-10])})
    with pytest.raises(KlonError, match="same length"):
        datasets.load(folder)
    folder = tmp_path / "rate"
    _write_pairs(folder, {"a": (x, y)})
    sf.write(folder / "target" / "a.wav", y, 48000, subtype="FLOAT")
    with pytest.raises(KlonError, match="same sample rate"):
        datasets.load(folder)
    folder = _write_pairs(tmp_path / "silent", {"a": (x, 0 * y)})
    with pytest.raises(KlonError, match="silent"):
        datasets.load(folder)
    folder = _write_pairs(tmp_path / "missing", {"a": (x, y)})
    (folder / "target" / "a.wav").rename(folder / "target" / "b.wav")
    with pytest.raises(KlonError, match="no target"):
        datasets.load(folder)
    with pytest.raises(KlonError, match="not a training dataset"):
        datasets.load(tmp_path)
    with pytest.raises(KlonError, match="no such file"):
        datasets.load(tmp_path / "nowhere")


def test_misaligned_and_clipped_targets_are_reported(tmp_path):
    late = datasets.load(_write_pairs(tmp_path / "late", {"a": _pair(delay=200)}))
    assert any("behind the input by 200 samples" in w for w in late.warnings)
    early = datasets.load(_write_pairs(tmp_path / "early", {"a": _pair(delay=-5)}))
    assert any("ahead of the input by 5 samples" in w for w in early.warnings)
    x, y = _pair()
    clipped = datasets.load(_write_pairs(tmp_path / "clip", {"a": (x, np.clip(3 * y, -1, 1))},
                                         subtype="PCM_16"))
    assert any("full scale" in w for w in clipped.warnings)
    # float files have no full scale: volts beyond 1 are not clipping
    loud = datasets.load(_write_pairs(tmp_path / "loud", {"a": (x, 3 * y)}))
    assert not loud.warnings


def test_split_is_seeded_and_holds_out_one_in_sixteen():
    train, validation = datasets.split(400, seed=0)
    assert len(train) == 375 and len(validation) == 25
    assert not set(train) & set(validation)
    again = datasets.split(400, seed=0)
    assert np.array_equal(validation, again[1])
    assert not np.array_equal(validation, datasets.split(400, seed=1)[1])
    with pytest.raises(KlonError, match="hold out"):
        datasets.split(5, validation=5)


@needs_data
def test_reference_data_conventions():
    data = datasets.load(REFERENCE, 0.5)
    assert data.inputs.shape == (400, 22050) and data.score_start == 14000
    raw_x, _ = sf.read(REFERENCE / "DataIn" / "sample7.wav", dtype="int16")
    raw_y, _ = sf.read(REFERENCE / "Data50" / "sample7.wav", dtype="int16")
    i = data.names.index("sample7")
    assert np.array_equal(data.inputs[i], raw_x / 2 ** 15)
    assert np.array_equal(data.targets[i], 2.0 * raw_y.astype(np.float64) / 2 ** 15)
    with pytest.raises(KlonError, match="Data30"):
        datasets.load(REFERENCE, 0.3)
    with pytest.raises(KlonError, match="--gain"):
        datasets.load(REFERENCE, None)


# --- training ---------------------------------------------------------------------------------

def _tiny_folder(tmp_path):
    """A few seconds of generated playing through a soft clipper with some memory: learnable
    in a few epochs."""
    from scipy.signal import lfilter

    from klon.dsp.synth import guitar_phrases
    pairs = {}
    for seed in range(3):
        x = guitar_phrases(44100, 1.5, 0.5, seed=seed)
        y = np.tanh(4 * lfilter([0.3], [1, -0.7], x)).astype(np.float32)
        pairs[f"c{seed}"] = (x, y)
    return _write_pairs(tmp_path / "tiny", pairs)


def _tiny_data(tmp_path):
    return datasets.load(_tiny_folder(tmp_path))


TINY = dict(hidden=4, epochs=4, batch_size=4, learning_rate=1e-2, tbptt=1024, warmup=512,
            validation=2, patience=100)


def test_training_lowers_the_loss_and_keeps_the_best_model(tmp_path):
    data = _tiny_data(tmp_path)
    trainer = Trainer(data, TrainConfig(**TINY), log=None)
    before = trainer.validate()[1]
    model = trainer.run()
    h = trainer.history
    assert len(h.epoch) == 4
    assert h.train_esr[-1] < 0.5 * h.train_esr[0]
    after = trainer.validate()[1]
    assert after < 0.5 * before
    assert after == pytest.approx(min(h.validation_esr), rel=1e-4)  # the best epoch's weights
    metadata = trainer.metadata()
    assert metadata["epochs"] == 4 and metadata["validation_esr"] == pytest.approx(after)
    assert model is trainer.model


def test_a_checkpoint_resumes_exactly(tmp_path):
    data = _tiny_data(tmp_path)
    straight = Trainer(data, TrainConfig(**TINY), log=None)
    straight.run()
    first = Trainer(data, TrainConfig(**{**TINY, "epochs": 2}), checkpoint=tmp_path / "c.ckpt",
                    log=None)
    first.run()
    resumed = Trainer(data, TrainConfig(**TINY), log=None)
    resumed.resume(tmp_path / "c.ckpt")
    resumed.run()
    assert resumed.history.train_esr == straight.history.train_esr
    for a, b in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)
    other = Trainer(data, TrainConfig(**{**TINY, "hidden": 6}), log=None)
    with pytest.raises(KlonError, match="different settings"):
        other.resume(tmp_path / "c.ckpt")
    with pytest.raises(KlonError, match="no checkpoint"):
        other.resume(tmp_path / "none.ckpt")


def test_training_is_deterministic_under_a_seed(tmp_path):
    data = _tiny_data(tmp_path)
    config = TrainConfig(**{**TINY, "epochs": 1})
    a, b = Trainer(data, config, log=None), Trainer(data, config, log=None)
    a.run()
    b.run()
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_an_lstm_trains_too(tmp_path):
    data = _tiny_data(tmp_path)
    trainer = Trainer(data, TrainConfig(**{**TINY, "cell": "lstm", "epochs": 3}), log=None)
    trainer.run()
    h = trainer.history
    assert h.train_esr[-1] < 0.7 * h.train_esr[0]
    export.save(tmp_path / "lstm.json", trainer.model, trainer.metadata())
    document = json.loads((tmp_path / "lstm.json").read_text())
    assert document["layers"][0]["type"] == "lstm"
    assert np.asarray(document["layers"][0]["weights"][1]).shape == (4, 16)


# --- several gains: `klon dataset` and `klon train` with --gain a,b ----------------------------

def test_model_files_are_named_by_gain(tmp_path):
    assert model_file_name(0.5) == "gain_50.json"
    assert model_paths(tmp_path / "m.json", [0.5]) == [(0.5, tmp_path / "m.json")]
    assert model_paths(tmp_path / "m.json", [None]) == [(None, tmp_path / "m.json")]
    assert model_paths(tmp_path / "set", [0.25]) == [(0.25, tmp_path / "set" / "gain_25.json")]
    assert model_paths(tmp_path / "set", [0.0, 1.0]) == [
        (0.0, tmp_path / "set" / "gain_0.json"), (1.0, tmp_path / "set" / "gain_100.json")]
    with pytest.raises(KlonError, match="must be a folder"):
        model_paths(tmp_path / "m.json", [0.0, 1.0])
    with pytest.raises(KlonError, match="give --gain"):
        model_paths(tmp_path / "set", [None])


def test_several_gains_train_in_parallel_processes(tmp_path):
    folder = _tiny_folder(tmp_path)
    models = model_paths(tmp_path / "set", [0.25, 0.75])
    metadata = train_gains(folder, models, TrainConfig(**{**TINY, "epochs": 1}), jobs=2)
    assert [m["gain"] for m in metadata] == [0.25, 0.75]
    assert sorted(p.name for p in (tmp_path / "set").iterdir()) == [
        "gain_25.json", "gain_25.json.ckpt", "gain_75.json", "gain_75.json.ckpt"]
    for gain, path in models:
        meta = json.loads(path.read_text())["metadata"]
        assert meta["gain"] == gain and meta["epochs"] == 1 and meta["hidden_size"] == 4


def test_a_pair_of_recordings_trains_at_the_gain_given(tmp_path):
    x, y = _pair(1.2)
    sf.write(tmp_path / "in.wav", x, 44100, subtype="FLOAT")
    sf.write(tmp_path / "target.wav", y, 44100, subtype="FLOAT")
    models = model_paths(tmp_path / "m.json", [0.5])
    config = TrainConfig(**{**TINY, "epochs": 1, "validation": 1})
    [metadata] = train_gains((tmp_path / "in.wav", tmp_path / "target.wav"), models, config)
    assert metadata["gain"] == 0.5 and metadata["data"] == "in.wav"
    assert Path(f"{tmp_path / 'm.json'}.ckpt").exists()


def test_a_dataset_at_several_gains_has_a_folder_each(tmp_path):
    from klon.dsp.synth import guitar_phrases
    sf.write(tmp_path / "take.wav", guitar_phrases(44100, 0.3, 0.3), 44100, subtype="FLOAT")
    folders = render_gains([tmp_path / "take.wav"], tmp_path / "ds", [0.0, 1.0])
    assert folders == [tmp_path / "ds" / "gain_0", tmp_path / "ds" / "gain_100"]
    low, high = datasets.load(tmp_path / "ds", 0.0), datasets.load(tmp_path / "ds", 1.0)
    assert (low.gain, high.gain) == (0.0, 1.0)
    assert np.array_equal(low.inputs, high.inputs)
    assert np.std(high.targets) > 2 * np.std(low.targets)  # more Gain, more output
