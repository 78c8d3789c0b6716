"""The shipped model sets are what their docs say: they load in the engine, carry their metadata,
and score as claimed on clips they never trained on."""
import json
from pathlib import Path

import numpy as np
import pytest

from klon.core import audio
from klon.core.metrics import clip_esr
from klon.core.paths import SHIPPED_MODELS, find_data
from klon.neural import RecurrentModel
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


def test_the_neural_pedal_defaults_to_the_circuit_set_and_sounds_like_the_circuit():
    from klon import Centaur
    from klon.core.metrics import esr
    from klon.dsp.synth import guitar_riff
    x = guitar_riff(44100, 2.0)  # generated playing the models never trained on
    pedal = Centaur(44100, engine="neural")
    assert [spec.gain for spec in pedal.gain_stage.specs] == list(GAINS)
    for gain, limit in ((0.0, 0.1), (0.5, 0.5), (1.0, 1.5)):
        circuit = Centaur(44100, gain=gain, treble=0.6, level=0.5)(x)
        neural = Centaur(44100, gain=gain, treble=0.6, level=0.5, engine="neural")(x)
        assert 100 * esr(circuit, neural) < limit


def test_at_48_khz_the_neural_pedal_takes_the_48_khz_set_and_sounds_like_the_circuit():
    from klon import Centaur
    from klon.core.metrics import esr
    from klon.dsp.synth import guitar_riff
    x = guitar_riff(48000, 2.0)
    pedal = Centaur(48000, engine="neural")
    assert pedal.sample_rate == 48000
    assert {Path(spec.source).parent.name for spec in pedal.gain_stage.specs} == {"circuit-48k"}
    for gain, limit in ((0.0, 0.1), (0.5, 0.5), (1.0, 1.5)):
        circuit = Centaur(48000, gain=gain, treble=0.6, level=0.5)(x)
        neural = Centaur(48000, gain=gain, treble=0.6, level=0.5, engine="neural")(x)
        assert 100 * esr(circuit, neural) < limit
