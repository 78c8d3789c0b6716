"""klon.neural: recurrent models without torch, the model bank and the neural pedal, as a user
streams, loads and tweaks them."""
import copy
import itertools
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, PUBLISHED, di_clip, sine

from klon import Centaur, KlonError
from klon.dsp.activations import fast_tanh_array
from klon.neural import RecurrentModel, read_model, reference_output
from klon.neural.bank import ModelBank
from klon.neural.model import PREROLL_SAMPLES, silence_state
from klon.tools.scoring import score

FS = 44_100
GAINS = (0, 25, 50, 75, 100)
MATCH = 1e-5  # the bound: compiled output vs the float64 maths


def published(gain):
    return PUBLISHED / f"centaur_{gain}.json"


@pytest.fixture(scope="module")
def guitar():
    """2 s of direct-input guitar: four reference clips end to end, volts (int16 / 2^15)."""
    return di_clip("sample3", "sample57", "sample150", "sample301").astype(np.float32)


def random_model(kind, hidden, inputs=1, seed=0, scale=1.0):
    """A Keras-style JSON document with random weights of a realistic size."""
    rng = np.random.default_rng(seed)
    gates = (3 if kind == "gru" else 4) * hidden
    bias = rng.normal(0, 0.3, (2, gates) if kind == "gru" else gates)
    return {"in_shape": [None, None, inputs],
            "layers": [{"type": kind, "activation": "tanh", "shape": [None, None, hidden],
                        "weights": [rng.normal(0, scale, (inputs, gates)).tolist(),
                                    rng.normal(0, scale / np.sqrt(hidden),
                                               (hidden, gates)).tolist(),
                                    bias.tolist()]},
                       {"type": "dense", "activation": "", "shape": [None, None, 1],
                        "weights": [rng.normal(0, 1 / np.sqrt(hidden), (hidden, 1)).tolist(),
                                    [0.01]]}]}


def write(folder, name, document):
    path = Path(folder) / name
    path.write_text(json.dumps(document))
    return path


# --- model files --------------------------------------------------------------------------

def test_the_published_models_load_with_their_gain():
    for gain in GAINS:
        spec = read_model(published(gain))
        assert (spec.kind, spec.hidden_size, spec.inputs) == ("gru", 8, 1)
        assert spec.gain == gain / 100 and spec.sample_rate == FS
        n_params = spec.kernel.size + spec.recurrent.size + spec.bias.size + 8 + 1
        assert n_params == 273  # as the data's README says


def _base():
    return json.loads(published(50).read_text())


def _edit(change):
    def make():
        document = _base()
        change(document)
        return document
    return make


def _set_layer(index, key, value):
    return _edit(lambda d: d["layers"][index].__setitem__(key, value))


BAD_MODELS = {
    "not-an-object": (lambda: [1, 2, 3], ["json object"]),
    "no-layers": (_edit(lambda d: d.pop("layers")), ["missing 'layers'"]),
    "conv-layer": (_set_layer(0, "type", "conv1d"), ["conv1d", "unsupported"]),
    "two-grus": (_edit(lambda d: d["layers"].insert(0, copy.deepcopy(d["layers"][0]))),
                 ["gru -> gru -> dense", "unsupported"]),
    "dense-only": (_edit(lambda d: d["layers"].pop(0)), ["unsupported"]),
    "dense-2": (_set_layer(1, "shape", [None, None, 2]), ["dense(2)"]),
    "dense-relu": (_set_layer(1, "activation", "relu"), ["relu"]),
    "hard-sigmoid": (_set_layer(0, "recurrent_activation", "hard_sigmoid"), ["hard_sigmoid"]),
    "reset-after-false": (_edit(lambda d: d["layers"][0]["weights"].__setitem__(
        2, d["layers"][0]["weights"][2][0])), ["reset_after"]),
    "recurrent-shape": (_edit(lambda d: d["layers"][0]["weights"].__setitem__(
        1, d["layers"][0]["weights"][1][:7])), ["recurrent weights", "7 x 24", "8 x 24"]),
    "kernel-vs-in-shape": (_edit(lambda d: d.__setitem__("in_shape", [None, None, 2])),
                           ["kernel", "2 x 24"]),
    "ragged": (_edit(lambda d: d["layers"][0]["weights"][1][3].pop()), ["rectangular"]),
    "nan-weight": (_edit(lambda d: d["layers"][1]["weights"][0][2].__setitem__(0, float("nan"))),
                   ["nan"]),
    "bad-in-shape": (_edit(lambda d: d.__setitem__("in_shape", [1])), ["in_shape"]),
    "bad-gain": (_edit(lambda d: d.__setitem__("metadata", {"gain": 7})), ["gain"]),
    "hidden-size-mismatch": (_edit(lambda d: d.__setitem__("metadata", {"hidden_size": 16})),
                             ["hidden_size"]),
}


@pytest.mark.parametrize("name", list(BAD_MODELS))
def test_unsupported_or_broken_models_are_refused_by_name(tmp_path, name):
    make, words = BAD_MODELS[name]
    path = write(tmp_path, f"{name}.json", make())
    with pytest.raises(KlonError) as error:
        RecurrentModel(path)
    message = str(error.value).lower()
    assert str(path).lower() in message
    assert any(word in message for word in words), message


def test_missing_malformed_and_folder_model_files(tmp_path):
    with pytest.raises(KlonError, match="no such file"):
        read_model(tmp_path / "nothing.json")
    with pytest.raises(KlonError, match="directory"):
        read_model(tmp_path)
    bad = tmp_path / "cut.json"
    bad.write_text(published(0).read_text()[:500])
    with pytest.raises(KlonError, match="malformed JSON"):
        read_model(bad)
    binary = tmp_path / "weights.json"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(KlonError, match="cut.json|not a text|malformed"):
        read_model(binary)


# --- the maths ----------------------------------------------------------------------------

def test_fast_tanh_is_accurate_odd_and_bounded():
    x = np.concatenate([np.linspace(-20, 20, 400_001), [-1e30, 1e30]]).astype(np.float32)
    y = fast_tanh_array(x)
    assert np.max(np.abs(y - np.tanh(x.astype(np.float64)))) < 4e-7
    assert np.array_equal(y, -fast_tanh_array(-x))
    assert np.all(np.abs(y) <= 1.0)


@pytest.mark.parametrize("gain", GAINS)
def test_published_models_match_the_float64_maths(guitar, gain):
    model = RecurrentModel(published(gain))
    loud = np.concatenate([guitar, 4 * guitar[:FS // 4]])  # and far beyond guitar level
    y = model(loud)
    assert y.dtype == np.float32
    expected = reference_output(model.spec, loud, preroll=PREROLL_SAMPLES)
    assert np.max(np.abs(y - expected)) < MATCH


@pytest.mark.parametrize("kind, hidden, inputs", [("gru", 1, 1), ("gru", 3, 2), ("gru", 16, 1),
                                                  ("gru", 40, 1), ("lstm", 8, 1), ("lstm", 5, 3),
                                                  ("lstm", 24, 1)])
def test_any_width_gru_and_lstm_match_the_float64_maths(tmp_path, kind, hidden, inputs):
    path = write(tmp_path, "model.json", random_model(kind, hidden, inputs, seed=hidden))
    model = RecurrentModel(path)
    rng = np.random.default_rng(1)
    x = (0.3 * rng.standard_normal((inputs, 3000))).astype(np.float32)
    y = model(x if inputs > 1 else x[0])
    expected = reference_output(model.spec, x.T[None], preroll=PREROLL_SAMPLES)[0]
    assert np.max(np.abs(expected)) > 0.05  # the model does something
    assert np.max(np.abs(y - expected)) < MATCH


def test_published_models_score_as_published_and_as_the_float64_maths():
    """docs/neural-engine.md's table on 40 of the 400 clips: the compiled engine scores what the
    float64 maths scores, and about what the paper reports (pooled ESR 0.5 to 1.7 %)."""
    for gain, (e_mean, e_pool), (r_mean, r_pool), diff in score(DATA, PUBLISHED, clips=40):
        assert diff < MATCH
        assert abs(e_mean - r_mean) < 1e-4 * r_mean and abs(e_pool - r_pool) < 1e-4 * r_pool
        assert 0.002 < e_pool < 0.02, (gain, e_pool)


# --- streaming ----------------------------------------------------------------------------

def test_output_is_identical_whatever_the_block_size(guitar):
    stereo = np.stack([guitar, 0.5 * guitar[::-1]])
    whole = RecurrentModel(published(100))(stereo)
    for block in (1, 7, 64, 1000, 8192):
        model = RecurrentModel(published(100))
        model.reset(2)
        pieces = [model.process(stereo[:, i:i + block]) for i in range(0, stereo.shape[1], block)]
        assert np.array_equal(np.concatenate(pieces, axis=1), whole), block
        mono, out = RecurrentModel(published(100)), np.empty_like(guitar)
        for i in range(0, guitar.size, block):  # the mono path straight into `out`
            mono.process(guitar[i:i + block], out[i:i + block])
        assert np.array_equal(out, whole[0]), block


def test_channels_have_their_own_state(guitar):
    model = RecurrentModel(published(50))
    both = model(np.stack([guitar, np.zeros_like(guitar)]))
    assert np.array_equal(both[0], model(guitar))
    assert np.max(np.abs(both[1])) < 1e-5  # silence in, silence out: the state did not leak


def test_reset_starts_at_rest_without_a_click():
    silence = np.zeros(4096, dtype=np.float32)
    for gain in GAINS:
        model = RecurrentModel(published(gain))
        y = model(silence)
        assert np.max(np.abs(y)) < 1e-4  # pre-rolled: already where it rests
        unrolled = reference_output(model.spec, silence[:100])  # a zero state instead
        assert np.max(np.abs(unrolled)) > 1e-3 or gain == 25  # which would have clicked
    model.process(sine(440, 0.1, 0.5))
    model.reset()
    assert np.array_equal(model(silence), y)


def test_nan_input_is_refused_and_nothing_changes(guitar):
    model = RecurrentModel(published(50))
    model.process(guitar[:1000])
    state = model.state
    bad = guitar[1000:2000].copy()
    bad[500] = np.inf
    with pytest.raises(KlonError, match="NaN or Inf"):
        model.process(bad)
    assert np.array_equal(model.state, state)


def _traced_growth(process, block, out, seconds=10.0):
    """Bytes of traced memory gained between the first block and the last of a 10 s stream
    (less what the measuring itself holds: the same measurement over no blocks)."""
    def growth(n_blocks):
        tracemalloc.start()
        try:
            process(block, out)  # the first block
            start = tracemalloc.get_traced_memory()[0]
            for _ in itertools.repeat(None, n_blocks):  # range() would keep an int > 256 alive
                process(block, out)
            return tracemalloc.get_traced_memory()[0] - start
        finally:
            tracemalloc.stop()

    process(block, out)  # compiled and sized before anything is traced
    return growth(int(seconds * FS) // block.shape[-1]) - growth(0)


def test_streaming_allocates_nothing(guitar):
    block = np.ascontiguousarray(np.stack([guitar[:64], guitar[64:128]]))
    out = np.empty_like(block)
    model = RecurrentModel(published(50))
    assert _traced_growth(model.process, block, out) == 0
    assert _traced_growth(RecurrentModel(published(50)).process, block[0], out[0]) == 0
    bank = ModelBank(PUBLISHED, gain=0.6, channels=2)
    assert _traced_growth(bank.process, block, out) == 0
    pedal = Centaur(FS, gain=0.9, engine="neural", models=PUBLISHED)
    assert _traced_growth(pedal.process, block, out) == 0


# --- the model bank -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def alone(guitar):
    """Each published model alone on the guitar clip, as the bank plays it: from its silence
    state, its output in silence subtracted (so silence in gives silence out)."""
    return {g: as_in_a_bank(published(g), guitar) for g in GAINS}


def as_in_a_bank(path, x):
    """One model alone as a bank plays it: from its silence state, its output there
    subtracted."""
    model = RecurrentModel(path)
    row, silence = silence_state(model.spec)
    model.rows[:] = row
    return model.process(x) - np.float32(silence)


def test_bank_at_a_model_gain_is_that_model_and_between_two_a_mix(guitar, alone):
    bank = ModelBank(PUBLISHED, gain=0.75)
    assert np.array_equal(bank(guitar), alone[75])
    bank = ModelBank(PUBLISHED, gain=0.6)  # 0.5 and 0.75, weights 0.6 and 0.4
    np.testing.assert_allclose(bank(guitar), 0.6 * alone[50] + 0.4 * alone[75], atol=1e-6)


def test_a_model_brought_in_by_the_knob_plays_as_if_it_had_run_all_along(guitar, alone):
    """Gain 0 -> 1 at 0.5 s: every model joins mid-stream, yet the output is the mix of the
    models run alone from the start, sample for sample, as the Gain glides."""
    bank = ModelBank(PUBLISHED, gain=0.0)
    start = FS // 2
    y = np.concatenate([bank.process(guitar[:start]), _set_and_process(bank, 1.0, guitar[start:])])
    ramp = int(round(0.05 * FS))
    gain = np.zeros(guitar.size)
    gain[start:] = np.minimum(np.arange(1, guitar.size - start + 1) / ramp, 1.0)
    expected = np.zeros(guitar.size)
    for g in GAINS:
        weight = np.clip(1 - np.abs(gain - g / 100) / 0.25, 0, 1)
        expected += weight * alone[g]
    assert np.max(np.abs(y - expected)) < 1e-5


def _set_and_process(bank, gain, x):
    bank.gain = gain
    return bank.process(x)


def _max_step(y):
    return np.max(np.abs(np.diff(y)))


@pytest.mark.parametrize("signal", ["sine", "guitar"])
def test_sweeping_gain_does_not_click(guitar, signal):
    """Gain 0 -> 1 over 2 s in 64-sample blocks: no sample-to-sample step larger than the
    largest step of any model alone (in steady state) on the same input."""
    x = sine(220, 2.0, 0.3) if signal == "sine" else guitar
    steady = max(_max_step(RecurrentModel(published(g))(x)[FS // 10:]) for g in GAINS)
    bank = ModelBank(PUBLISHED, gain=0.0)
    out = []
    for i in range(0, x.size, 64):
        bank.gain = min(i / (x.size - 64), 1.0)
        out.append(bank.process(x[i:i + 64]))
    y = np.concatenate(out)
    assert _max_step(y[FS // 10:]) <= steady
    assert np.max(np.abs(y[-FS // 4:])) > 0.1  # and it is not silent


def test_bank_streaming_with_knob_moves_is_block_size_independent(guitar):
    results = []
    for block in (1, 64, 333, 4096):
        bank = ModelBank(PUBLISHED, gain=0.2)
        out, i = [], 0
        for cut, gain in ((10_000, 0.9), (30_000, 0.0), (60_000, 0.55), (guitar.size, None)):
            while i < cut:
                n = min(block, cut - i)
                out.append(bank.process(guitar[i:i + n]))
                i += n
            if gain is not None:
                bank.gain = gain
        results.append(np.concatenate(out))
    for y in results[1:]:
        assert np.max(np.abs(y - results[0])) < 1e-6


def test_an_lstm_set_with_metadata_plays_in_the_pedal(tmp_path, guitar):
    """Our own sets: files named by gain, metadata with gain, sample rate and width; LSTM too."""
    for gain in (0, 100):
        document = random_model("lstm", 12, seed=gain)
        document["metadata"] = {"gain": gain / 100, "sample_rate": FS, "hidden_size": 12}
        write(tmp_path, f"gain_{gain}.json", document)
    x = guitar[:8000]
    low, high = (as_in_a_bank(tmp_path / f"gain_{g}.json", x) for g in (0, 100))
    bank = ModelBank(tmp_path, gain=0.5)
    np.testing.assert_allclose(bank(x), 0.5 * low + 0.5 * high, atol=1e-6)
    pedal = Centaur(FS, gain=0.5, engine="neural", models=tmp_path)
    y = pedal(np.stack([x, x[::-1]]))
    assert np.all(np.isfinite(y)) and np.max(np.abs(y)) > 1e-3


def test_bank_refuses_what_it_cannot_mix(tmp_path):
    write(tmp_path, "a_0.json", random_model("gru", 8))
    write(tmp_path, "a_100.json", random_model("gru", 16))
    with pytest.raises(KlonError, match="share one shape"):
        ModelBank(tmp_path)
    with pytest.raises(KlonError, match="no Gain setting"):
        ModelBank([write(tmp_path, "x.json", random_model("gru", 8)),
                   write(tmp_path, "y.json", random_model("gru", 8))])
    with pytest.raises(KlonError, match="two models for Gain 0.5"):
        ModelBank([published(50), published(0), published(50)])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(KlonError, match="no .json model files"):
        ModelBank(empty)
    with pytest.raises(KlonError, match="gain must be between 0 and 1"):
        ModelBank(PUBLISHED).gain = 1.5


# --- the neural pedal ---------------------------------------------------------------------

def test_neural_pedal_is_a_centaur_with_the_same_knobs(guitar):
    pedal = Centaur(FS, gain=0.7, treble=0.4, level=0.6, engine="neural", models=PUBLISHED)
    assert isinstance(pedal, Centaur) and pedal.engine == "neural" and pedal.latency == 0
    assert isinstance(pedal.gain_stage, ModelBank)
    assert (pedal.gain, pedal.treble, pedal.level) == (0.7, 0.4, 0.6)
    y = pedal(np.stack([guitar, guitar[::-1]]))
    assert y.shape == (2, guitar.size) and y.dtype == np.float32 and np.all(np.isfinite(y))
    circuit = Centaur(FS, gain=0.7, treble=0.4, level=0.6)(guitar)
    # the same pedal around a different gain stage: same order of level, not the same signal
    ratio = np.sqrt(np.mean(y[0] ** 2) / np.mean(circuit ** 2))
    assert 0.1 < ratio < 10


def test_neural_pedal_streams_identically_in_any_block_size_with_knob_moves(guitar):
    stereo = np.stack([guitar, 0.7 * guitar[::-1]])
    results = []
    for block in (8, 64, 1024):
        pedal = Centaur(FS, engine="neural", models=PUBLISHED)
        out = []
        for i in range(0, stereo.shape[1], block):
            if i == 20_480:
                pedal.gain, pedal.treble, pedal.level = 1.0, 0.9, 0.8
            out.append(pedal.process(stereo[:, i:i + block]))
        results.append(np.concatenate(out, axis=1))
    for y in results[1:]:
        assert np.max(np.abs(y - results[0])) < 1e-6


def test_neural_pedal_knob_jump_does_not_click():
    x = sine(220.0, 1.5, 0.3)
    steady = max(_max_step(Centaur(FS, gain=g, engine="neural", models=PUBLISHED)(x)[FS // 2:])
                 for g in (0.0, 1.0))
    pedal = Centaur(FS, gain=0.0, engine="neural", models=PUBLISHED)
    out = []
    for i in range(0, x.size, 64):
        if i == FS // 2:
            pedal.gain = 1.0
        out.append(pedal.process(x[i:i + 64]))
    assert _max_step(np.concatenate(out)[FS // 4:]) <= 1.05 * steady


def test_one_model_file_replaces_the_bank(guitar):
    pedal = Centaur(FS, gain=0.1, engine="neural", model=published(100))
    bank_of_one = Centaur(FS, gain=0.9, engine="neural", models=PUBLISHED)
    bank_of_one.gain = 1.0
    bank_of_one.reset()
    pedal.gain = 0.9  # one model: the Gain knob does not change which one plays
    pedal.reset()
    assert np.array_equal(pedal(guitar), bank_of_one(guitar))


def test_a_two_input_model_gets_the_gain_as_its_second_input(tmp_path, guitar):
    path = write(tmp_path, "conditioned.json", random_model("gru", 6, inputs=2, seed=3))
    bank = ModelBank([path], gain=0.25)  # a point of the Gain grid its silence is known on
    x = guitar[:5000]
    y = bank(x)
    # the reference from a zero state, settled on silence at that Gain first: the engine starts
    # at that silence state and subtracts the output there
    settle = 32 * PREROLL_SAMPLES
    audio = np.concatenate([np.zeros(settle + 1, np.float32), x])
    inputs = np.stack([audio, np.full_like(audio, 0.25)], axis=1)[None]
    reference = reference_output(read_model(path), inputs)[0]
    expected = reference[settle + 1:] - reference[settle]
    assert np.max(np.abs(y - expected)) < MATCH


def test_loud_input_never_gives_nan_or_inf():
    x = np.stack([sine(100, 0.2, 50.0), np.full(int(0.2 * FS), -1e6, dtype=np.float32)])
    for gain in (0.0, 1.0):
        y = Centaur(FS, gain=gain, engine="neural", models=PUBLISHED)(x)
        assert np.all(np.isfinite(y))


def test_neural_pedal_errors_are_clear(tmp_path):
    with pytest.raises(KlonError, match="no model set 'no-such-set'"):
        Centaur(FS, engine="neural", models="no-such-set")
    with pytest.raises(KlonError, match="whole number of Hz, got 44100.5"):
        Centaur(44_100.5, engine="neural")
    with pytest.raises(KlonError, match="unsupported sample rate 384000 Hz"):
        Centaur(384_000, engine="neural")
    with pytest.raises(KlonError, match="engine='neural'"):
        Centaur(FS, models=PUBLISHED)
    with pytest.raises(KlonError, match="circuit engine"):
        Centaur(FS, engine="neural", models=PUBLISHED, diode="mbrb2545ct")
    with pytest.raises(KlonError, match="no model set"):
        Centaur(FS, engine="neural", models=tmp_path / "nowhere")
    with pytest.raises(KlonError, match="NaN or Inf"):
        Centaur(FS, engine="neural", models=PUBLISHED).process(np.full(64, np.nan, np.float32))


def test_the_engine_never_imports_torch():
    code = ("import sys, numpy as np; from klon import Centaur; "
            f"Centaur(44100, engine='neural', models=r'{PUBLISHED}').process(np.zeros(64)); "
            "import klon.tools.scoring; assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_kernels_work_without_a_writable_cache_folder(tmp_path):
    """The generated kernels are cached on disk; with no folder to write they compile in memory
    and give the same numbers."""
    code = ("import numpy as np; from klon.neural import RecurrentModel; "
            "from klon.core.paths import cache_folder; assert cache_folder() is None; "
            f"print(repr(RecurrentModel(r'{published(75)}')(np.linspace(-1, 1, 500))[-5:]"
            ".tolist()))")
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder would go")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "KLON_CACHE_DIR": str(blocked)},
                            check=False)
    assert result.returncode == 0, result.stderr
    expected = RecurrentModel(published(75))(np.linspace(-1, 1, 500))[-5:].tolist()
    assert eval(result.stdout) == expected
