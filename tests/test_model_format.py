"""The model file format (docs/model-format.md): one reader and one writer, a format version,
and the architecture registry that the reader, the kernels, the C export and training share."""
import json
from dataclasses import replace

import numpy as np
import pytest

from klon.core.errors import KlonError
from klon.core.paths import SHIPPED_MODELS, find_data
from klon.neural.architectures import PROVIDES, architecture, kinds
from klon.neural.model_file import (
    FORMAT_VERSION,
    ModelSpec,
    model_document,
    parse_model,
    read_model,
    write_model,
)

DATA = find_data()
SHIPPED = sorted(SHIPPED_MODELS.glob("*/*.json"))
ARRAYS = ("kernel", "recurrent", "bias", "dense_weights")


def random_spec(kind, hidden, inputs=1, seed=0, **fields):
    """A spec of float64 weights that float32 cannot hold exactly."""
    rng = np.random.default_rng(seed)
    shapes = architecture(kind).weight_shapes(hidden, inputs)
    arrays = [rng.normal(0, 0.5, shapes[name]) for name in ("kernel", "recurrent", "bias")]
    return ModelSpec(kind, *arrays, rng.normal(0, 0.5, hidden), float(rng.normal()), **fields)


def assert_same_arrays(a, b):
    for name in ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype == np.float64 and np.array_equal(x, y), name
    assert a.dense_bias == b.dense_bias


# --- one writer, one reader ---------------------------------------------------------------

def test_shipped_files_are_what_the_writer_writes(tmp_path):
    """Rewriting a shipped file gives its bytes (with the version line added to the files
    written before the format had one), and reads back to the same float64 arrays (so the same
    float32 rows in the kernels)."""
    assert len(SHIPPED) == 21  # four sets of five, and the conditioned model
    for path in SHIPPED:
        spec = read_model(path)
        assert spec.format_version == 1
        out = write_model(tmp_path / path.name, spec)
        original = path.read_text()
        expected = original if "format_version" in spec.metadata else original.replace(
            '"metadata": {\n', '"metadata": {\n    "format_version": 1,\n', 1)
        assert out.read_text() == expected, path
        again = read_model(out)
        assert_same_arrays(spec, again)
        assert (again.gain, again.sample_rate, again.kind) == (spec.gain, spec.sample_rate,
                                                              spec.kind)
        assert np.array_equal(architecture(spec.kind).pack(again),
                              architecture(spec.kind).pack(spec))


@pytest.mark.parametrize("kind, hidden, inputs", [("gru", 8, 1), ("gru", 5, 2), ("lstm", 6, 1),
                                                  ("lstm", 3, 3)])
def test_write_then_read_round_trips(tmp_path, kind, hidden, inputs):
    spec = random_spec(kind, hidden, inputs, gain=0.25, sample_rate=48_000.0,
                       metadata={"note": "made here"})
    first = read_model(write_model(tmp_path / "a.json", spec))
    # the file holds float32: the arrays read back as the spec's values rounded to float32
    for name in ARRAYS:
        assert np.array_equal(getattr(first, name).astype(np.float32),
                              getattr(spec, name).astype(np.float32)), name
    assert np.float32(first.dense_bias) == np.float32(spec.dense_bias)
    assert (first.kind, first.hidden_size, first.inputs) == (kind, hidden, inputs)
    assert (first.gain, first.sample_rate) == (0.25, 48_000.0)
    assert first.metadata == {"format_version": FORMAT_VERSION, "note": "made here",
                              "gain": 0.25, "sample_rate": 48000}
    # and from there on a fixed point: the same bytes, the same float64 arrays
    second = read_model(write_model(tmp_path / "b.json", first))
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert_same_arrays(first, second)


@pytest.mark.skipif(DATA is None, reason="reference data (../shared/data) not found")
def test_the_original_plugins_files_read_and_rewrite_to_the_same_float32():
    for gain in (0, 25, 50, 75, 100):
        spec = read_model(DATA / "chowcentaur-models" / f"centaur_{gain}.json")
        assert spec.gain == gain / 100 and spec.metadata == {}
        again = parse_model(json.loads(json.dumps(model_document(spec))))
        for name in ARRAYS:
            assert np.array_equal(getattr(again, name).astype(np.float32),
                                  getattr(spec, name).astype(np.float32))
        # a rewritten file says what the name said
        assert again.gain == gain / 100 and again.sample_rate == 44_100.0


def test_the_writer_refuses_what_the_reader_would_and_writes_nothing(tmp_path):
    spec = random_spec("gru", 4, metadata={"hidden_size": 8})
    with pytest.raises(KlonError, match="cannot write model .*hidden_size"):
        write_model(tmp_path / "m.json", spec)
    with pytest.raises(KlonError, match="does not exist"):
        write_model(tmp_path / "no" / "m.json", random_spec("gru", 4))
    assert list(tmp_path.iterdir()) == []


def test_a_null_gain_is_no_gain(tmp_path):
    spec = random_spec("gru", 3, metadata={"gain": None})
    again = read_model(write_model(tmp_path / "m.json", spec))
    assert again.gain is None
    assert read_model(write_model(tmp_path / "gain_75.json", spec)).gain == 0.75


# --- the version -------------------------------------------------------------------------

def test_the_version_is_written_first_and_checked(tmp_path):
    path = write_model(tmp_path / "m.json", random_spec("lstm", 4))
    document = json.loads(path.read_text())
    assert list(document["metadata"])[0] == "format_version"
    assert document["metadata"]["format_version"] == FORMAT_VERSION == 1
    document["metadata"]["format_version"] = FORMAT_VERSION + 1
    document["layers"] = "whatever a later version holds"
    path.write_text(json.dumps(document))
    with pytest.raises(KlonError) as error:
        read_model(path)
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    assert f"format_version {FORMAT_VERSION + 1} is newer" in message and "update klon" in message
    for bad in ("1", 0, 1.5, True, None):
        document["metadata"]["format_version"] = bad
        with pytest.raises(KlonError, match="format_version must be a whole number"):
            parse_model(document)


def test_files_without_a_version_read_as_version_1():
    document = model_document(random_spec("gru", 2))
    del document["metadata"]["format_version"]
    assert parse_model(document).format_version == 1
    del document["metadata"]
    assert parse_model(document).format_version == 1


# --- the registry -------------------------------------------------------------------------

def test_the_registry_has_gru_and_lstm():
    assert kinds() == ("gru", "lstm")
    assert architecture("gru").GATES == ("z", "r", "c")
    assert architecture("lstm").GATES == ("i", "f", "c", "o")


def test_an_unknown_architecture_gets_one_line(tmp_path):
    with pytest.raises(KlonError) as error:
        architecture("transformer")
    message = str(error.value)
    assert "\n" not in message and "'transformer'" in message
    assert "gru" in message and "lstm" in message
    document = model_document(random_spec("gru", 2))
    document["layers"][0]["type"] = "transformer"
    path = tmp_path / "t.json"
    path.write_text(json.dumps(document))
    with pytest.raises(KlonError) as error:
        read_model(path)
    message = str(error.value)
    assert "\n" not in message and "'transformer'" in message and str(path) in message


@pytest.mark.parametrize("kind", kinds())
def test_each_architecture_provides_what_the_reader_kernels_and_c_export_need(kind):
    arch = architecture(kind)
    assert all(hasattr(arch, name) for name in PROVIDES)
    assert arch.KIND == kind
    hidden, inputs = 5, 2
    gates = len(arch.GATES)
    shapes = arch.weight_shapes(hidden, inputs)
    assert shapes["kernel"] == (inputs, gates * hidden)
    assert shapes["recurrent"] == (hidden, gates * hidden)
    # the reader checks shapes through the architecture
    spec = random_spec(kind, hidden, inputs)
    with pytest.raises(KlonError, match="recurrent weights have shape 4 x"):
        arch.check_weights({"kernel": spec.kernel, "recurrent": spec.recurrent[:4],
                            "bias": spec.bias}, hidden, inputs)
    # the row: every gate's blocks, the Dense layer and the state, on cache lines
    offsets, length = arch.layout(hidden, inputs)
    names = [f"{block}{g}" for g in arch.GATES for block in "KBU"]
    assert set(names + ["W", "BD", *arch.STATE_BLOCKS]) <= set(offsets)
    assert all(offset % 16 == 0 for offset in offsets.values())
    row = arch.pack(spec)
    assert row.dtype == np.float32 and row.shape == (length,)
    assert all(not row[offsets[b]:offsets[b] + hidden].any() for b in arch.STATE_BLOCKS)
    assert all(block in offsets for _, block, _ in arch.C_UNIT_FIELDS)
    # the numba step: Python source of `_step` with one argument per input
    source = arch.step_source(hidden, inputs)
    compile(source, "<step>", "exec")
    assert "def _step(m, r, u0, u1):" in source
    # the C step: klon_step and the bank's KLON_STEP, exact and fast variants
    c = arch.c_step(hidden, 1)
    assert "static float klon_step(const klon_model *m, float *state, float u0)" in c
    assert "#define KLON_STEP(m, state, u0, gain)" in c and "#ifdef KLON_FAST_ACTIVATIONS" in c
    # the float64 reference: one state vector per block of the row
    state = arch.reference_state(3, hidden)
    assert len(state) == len(arch.STATE_BLOCKS)
    new = arch.reference_step(spec, np.ones((3, inputs)), state)
    assert [s.shape for s in new] == [(3, hidden)] * len(state)


def test_a_spec_is_rewritten_with_its_gain_and_rate():
    spec = read_model(SHIPPED_MODELS / "circuit" / "gain_50.json")
    moved = replace(spec, gain=0.6, sample_rate=48_000.0)
    metadata = model_document(moved)["metadata"]
    assert metadata["gain"] == 0.6 and metadata["sample_rate"] == 48000
    assert isinstance(metadata["sample_rate"], int)


# --- training writes through the same writer ----------------------------------------------

@pytest.mark.parametrize("cell, inputs", [("gru", 1), ("gru", 2), ("lstm", 1)])
def test_a_file_written_by_training_reads_back_to_the_nets_values(tmp_path, cell, inputs):
    torch = pytest.importorskip("torch")
    from klon.neural.reference import reference_output
    from klon.train import export
    from klon.train.nets import GainStageNet

    torch.manual_seed(7)
    net = GainStageNet(6, cell, inputs)
    net.fused = False
    export.save(tmp_path / "m.json", net, {"gain": 0.5, "sample_rate": 44100})
    spec = read_model(tmp_path / "m.json")
    assert (spec.kind, spec.hidden_size, spec.inputs, spec.gain) == (cell, 6, inputs, 0.5)
    assert spec.metadata["cell"] == cell and spec.metadata["format_version"] == FORMAT_VERSION
    made = export.to_spec(net, {"gain": 0.5, "sample_rate": 44100})
    for name in ARRAYS:
        assert np.array_equal(getattr(spec, name).astype(np.float32),
                              getattr(made, name).astype(np.float32)), name
    # the file runs as the net does (float64 maths against torch's float32)
    x = 0.3 * np.random.default_rng(0).standard_normal((1, 400, inputs))
    with torch.no_grad():
        expected = net(torch.from_numpy(x.astype(np.float32)))[0].numpy()
    assert np.max(np.abs(reference_output(spec, x) - expected)) < 1e-5
    # and back into a net, parameter for parameter
    loaded, metadata = export.load(tmp_path / "m.json")
    assert metadata == spec.metadata
    mine, theirs = dict(net.named_parameters()), dict(loaded.named_parameters())
    if cell == "lstm":  # the file holds the LSTM's two biases as their sum
        for params in (mine, theirs):
            params["rnn.bias_ih_l0"] = params["rnn.bias_ih_l0"] + params.pop("rnn.bias_hh_l0")
    assert mine.keys() == theirs.keys()
    for name in mine:
        assert torch.equal(mine[name], theirs[name]), name
    with torch.no_grad():
        again = loaded(torch.from_numpy(x.astype(np.float32)))[0].numpy()
    assert np.max(np.abs(again - expected)) < 1e-6
