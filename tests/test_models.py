"""The shipped model sets are what their docs say: they load in the engine, carry their metadata,
and score as claimed on clips they never trained on."""
import json
from pathlib import Path

import numpy as np
import pytest

from klon.core import audio
from klon.core.metrics import clip_esr
from klon.core.paths import SHIPPED_MODELS, find_data
from klon.neural import RecurrentModel, read_model
from klon.pedal import GainStage

GAINS = (0.0, 0.25, 0.5, 0.75, 1.0)
PAPER_VALIDATION = {0.0: 0.70, 0.25: 0.57, 0.5: 0.50, 0.75: 0.67, 1.0: 1.72}  # ESR %
DATA = find_data()
needs_data = pytest.mark.skipif(DATA is None, reason="reference data (../shared/data) not found")


def shipped(name, gain):
    return SHIPPED_MODELS / name / f"gain_{round(100 * gain)}.json"


@pytest.mark.parametrize("name, hidden, rate", [("ltspice", 8, 44100), ("circuit", 8, 44100),
                                                ("circuit-gru16", 16, 44100),
                                                ("circuit-48k", 8, 48000)])
def test_each_set_has_five_gains_with_metadata(name, hidden, rate):
    for gain in GAINS:
        meta = json.loads(shipped(name, gain).read_text())["metadata"]
        assert meta["gain"] == gain and meta["hidden_size"] == hidden
        assert meta["sample_rate"] == rate and meta["cell"] == "gru"
        assert len(meta["validation_clips"]) > 0 and meta["training_seconds"] < 15 * 60
        assert RecurrentModel(shipped(name, gain)).gain == gain


def _reference_clips(names, gain):
    root = DATA / "klon-ltspice"
    x = np.stack([audio.read(root / "DataIn" / f"{n}.wav")[0][0] for n in names])
    y = np.stack([2.0 * audio.read(root / f"Data{round(100 * gain)}" / f"{n}.wav")[0][0]
                  for n in names])
    return x, y


@needs_data
@pytest.mark.parametrize("gain", GAINS)
def test_ltspice_models_beat_the_papers_validation_esr(gain):
    path = shipped("ltspice", gain)
    names = json.loads(path.read_text())["metadata"]["validation_clips"]
    x, y = _reference_clips(names, gain)
    model = RecurrentModel(path)
    prediction = model(x)  # one channel per clip, each from rest
    _, pooled = clip_esr(prediction[:, 14_000:], y[:, 14_000:])
    assert 100 * pooled < PAPER_VALIDATION[gain]
    assert 100 * pooled <= (1.0 if gain == 1.0 else 0.5)


def _held_out_di(path, count):
    names = json.loads(path.read_text())["metadata"]["validation_clips"]
    return [n.split("@")[0] for n in names if n.startswith("sample")][:count]


@needs_data
@pytest.mark.parametrize("name, limit", [("circuit", 1.0), ("circuit-gru16", 0.5),
                                         ("circuit-48k", 1.0)])
@pytest.mark.parametrize("gain", GAINS)
def test_circuit_models_follow_the_circuit_on_di_clips_they_never_heard(name, limit, gain):
    path = shipped(name, gain)
    model = RecurrentModel(path)
    clips = _held_out_di(path, 6)
    assert len(clips) == 6
    context = 2048  # silence in front, as the training segments had
    # the DI clips are 44.1 kHz: resampled to the set's rate, as `klon dataset` did
    x = np.stack([np.r_[np.zeros(context, np.float32), audio.resample(audio.read(
        DATA / "klon-ltspice" / "DataIn" / f"{n}.wav")[0][0], 44100, model.sample_rate)]
        for n in clips])
    y = GainStage(model.sample_rate, gain)(x.astype(np.float64))
    prediction = model(x)
    _, pooled = clip_esr(prediction[:, context:], y[:, context:])
    assert 100 * pooled <= limit


# the 13 Gain settings issue 14 measured the five-model bank at, and the DI clips the
# conditioned model never heard (its dataset rendered sample0..sample371)
CONDITIONED_GAINS = (0.0, 0.1, 0.2, 0.25, 0.33, 0.45, 0.5, 0.6, 0.7, 0.8, 0.875, 0.95, 1.0)
CONDITIONED_HELD_OUT = [f"sample{i}" for i in range(372, 400)]


def test_the_conditioned_model_has_its_metadata():
    spec = read_model(SHIPPED_MODELS / "circuit-cond" / "gru16.json")
    assert spec.inputs == 2 and spec.gain is None and spec.sample_rate == 44100
    meta = spec.metadata
    assert meta["inputs"] == ["audio", "gain"] and meta["hidden_size"] == 16
    # trained within issue 14's 30 minutes (28, beside a second seed on the other core)
    assert 0 < meta["training_seconds"] <= 30 * 60 and meta["epochs"] >= meta["best_epoch"] > 0
    assert not set(meta["validation_clips"]) & set(CONDITIONED_HELD_OUT)


@needs_data
@pytest.mark.parametrize("gain", CONDITIONED_GAINS)
def test_the_conditioned_model_follows_the_circuit_at_every_gain(gain):
    from klon.neural import ModelBank
    context = 2048  # silence in front, as the training segments had
    x = np.stack([np.r_[np.zeros(context, np.float32),
                        audio.read(DATA / "klon-ltspice" / "DataIn" / f"{n}.wav")[0][0]]
                  for n in CONDITIONED_HELD_OUT])
    y = GainStage(44100, gain)(x.astype(np.float64))
    prediction = ModelBank("circuit-cond", gain)(x)
    _, pooled = clip_esr(prediction[:, context:], y[:, context:])
    assert 100 * pooled <= 1.0  # issue 14's target, at all 13 (docs/conditioned.md)


@pytest.mark.parametrize("rate, name", [(44100, "circuit"), (48000, "circuit-48k")])
def test_the_neural_pedal_defaults_to_the_set_for_the_rate_and_sounds_like_the_circuit(rate, name):
    from klon import Centaur
    from klon.core.metrics import esr
    from klon.dsp.synth import guitar_riff
    x = guitar_riff(rate, 2.0)  # generated playing the models never trained on
    pedal = Centaur(rate, engine="neural")
    assert pedal.sample_rate == rate
    assert {Path(spec.source).parent.name for spec in pedal.gain_stage.specs} == {name}
    for gain, limit in ((0.0, 0.1), (0.5, 0.5), (1.0, 1.5)):
        circuit = Centaur(rate, gain=gain, treble=0.6, level=0.5)(x)
        neural = Centaur(rate, gain=gain, treble=0.6, level=0.5, engine="neural")(x)
        assert len(neural) == len(x)
        assert 100 * esr(circuit, neural) < limit


def test_at_other_rates_the_default_set_runs_resampled_and_sounds_like_the_circuit():
    from klon import Centaur
    from klon.core.metrics import esr
    from klon.dsp.synth import guitar_riff
    x = guitar_riff(96_000, 2.0)
    pedal = Centaur(96_000, gain=0.3, treble=0.6, level=0.5, engine="neural")
    assert {Path(spec.source).parent.name for spec in pedal.gain_stage.specs} == {"circuit"}
    assert pedal.gain_stage.resampled
    assert 100 * esr(Centaur(96_000, gain=0.3, treble=0.6, level=0.5)(x), pedal(x)) < 1.0


@pytest.mark.parametrize("rate", [44100, 96000])
def test_the_conditioned_pedal_sounds_like_the_circuit_between_the_bank_settings(rate):
    from klon import Centaur
    from klon.core.metrics import esr
    from klon.dsp.synth import guitar_riff
    x = guitar_riff(rate, 2.0)
    for gain in (0.1, 0.3, 0.9):  # the bank: 6.7 % ESR at 0.1 on DI clips
        circuit = Centaur(rate, gain=gain, treble=0.6, level=0.5)(x)
        neural = Centaur(rate, gain=gain, treble=0.6, level=0.5, engine="neural",
                         models="circuit-cond")(x)
        assert 100 * esr(circuit, neural) < 1.0


@pytest.mark.parametrize("signal", ["sine", "guitar"])
def test_a_gain_sweep_through_the_conditioned_model_does_not_click(signal):
    """Gain 0 -> 1 over 2 s in 64-sample blocks: no sample-to-sample step larger than the
    largest step of the model held at any Gain of a grid (in steady state) on the same input."""
    from klon.dsp.synth import guitar_riff
    from klon.neural import ModelBank
    rate = 44_100
    t = np.arange(2 * rate) / rate
    x = (0.3 * np.sin(2 * np.pi * 220 * t) if signal == "sine" else
         guitar_riff(rate, 2.0, 0.3)).astype(np.float32)
    steady = max(np.max(np.abs(np.diff(ModelBank("circuit-cond", g)(x)[rate // 10:])))
                 for g in np.linspace(0, 1, 11))
    bank = ModelBank("circuit-cond", 0.0)
    out = []
    for i in range(0, x.size, 64):
        bank.gain = min(i / (x.size - 64), 1.0)
        out.append(bank.process(x[i:i + 64]))
    y = np.concatenate(out)
    assert np.max(np.abs(np.diff(y[rate // 10:]))) <= steady
    assert np.max(np.abs(y[-rate // 4:])) > 0.1  # and it is not silent


def test_the_conditioned_model_starts_quietly_from_a_zero_state():
    """Hosts built on RTNeural start a model from a zero state with no pre-roll: in silence its
    output moves no more than the original plugin's models do there (0.35 V) before it
    settles, at any Gain."""
    from klon.neural.architectures import architecture
    from klon.neural.kernels import compiled
    spec = read_model(SHIPPED_MODELS / "circuit-cond" / "gru16.json")
    run = compiled(spec.kind, spec.hidden_size, spec.inputs)["run_model"]
    for gain in np.linspace(0, 1, 11):
        row = architecture(spec.kind).pack(spec)[None, :]  # state zero
        x = np.zeros((1, 2, 44_100), np.float32)
        x[0, 1] = gain
        y = np.empty((1, 44_100), np.float32)
        run(x, y, row)
        assert np.max(np.abs(y[0] - y[0, -1])) <= 0.35
