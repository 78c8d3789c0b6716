"""Issue 13's regressions for models and the command line: training never overwrites without
--force (item 5), one line where one line is promised (item 7), a model trained on a pair of
recordings is a usable model (item 8), `klon --version`, and help texts that show defaults.

Training here is one epoch on a second of audio.
"""
import argparse
import importlib
import json
import os
import re
import shutil
import warnings

import numpy as np
import pytest
import soundfile as sf
from conftest import run_klon

import klon
from klon.core.errors import KlonError
from klon.dsp.synth import guitar_phrases
from klon.neural import model_file
from klon.neural.gain_stage import FixedModelWarning
from klon.pedal import GainStage
from klon.pedal.centaur import Centaur, make_gain_stage
from klon.train.jobs import check_outputs, data_origin

cli = importlib.import_module("klon.cli.main")  # klon.cli.main is also the function's name
RATE = 44_100
SHORT_TRAINING = ("--epochs", "1", "--batch-size", "4", "--validation", "1", "--warmup", "512")


def one_error_line(result, *words):
    """Exit status 2 and one line on stderr, without a traceback, holding every word."""
    assert result.returncode == 2, result.stderr
    # a first run may say that it compiles kernels (klon process does): progress, not the error
    lines = [line for line in result.stderr.strip().splitlines()
             if not line.startswith("klon: compiling")]
    assert len(lines) == 1 and "error: " in lines[0], result.stderr
    for word in words:
        assert word in lines[0], result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A DI recording and the circuit's gain stage at Gain 0.7 on it: 'an amp' of one
    setting."""
    folder = tmp_path_factory.mktemp("pair")
    x = guitar_phrases(RATE, 1.0, 0.3, seed=1).astype(np.float32)
    y = GainStage(RATE, 0.7)(x.astype(np.float64).reshape(1, -1))[0]
    sf.write(folder / "di.wav", x, RATE, subtype="FLOAT")
    sf.write(folder / "amp.wav", y, RATE, subtype="FLOAT")
    return folder


@pytest.fixture(scope="module")
def pair_model(pair):
    """`klon train --input di.wav --target amp.wav --out amp.json`, as docs/neural-models.md
    shows it (GRU-8: the shipped models' shape, whose kernels are compiled already)."""
    out = pair / "amp.json"
    result = run_klon("train", "--input", pair / "di.wav", "--target", pair / "amp.wav",
                      "--out", out, *SHORT_TRAINING)
    assert result.returncode == 0, result.stderr
    return out


# --- item 5: no overwrite without --force ------------------------------------------------------

def test_train_never_overwrites_a_model_or_its_checkpoint_without_force(pair, pair_model,
                                                                        tmp_path):
    model, checkpoint = tmp_path / "m.json", tmp_path / "m.json.ckpt"
    shutil.copy(pair_model, model)
    shutil.copy(f"{pair_model}.ckpt", checkpoint)
    before = model.read_bytes(), checkpoint.read_bytes()
    command = ("train", "--input", pair / "di.wav", "--target", pair / "amp.wav", "--out", model,
               *SHORT_TRAINING)
    line = one_error_line(run_klon(*command), "already exists", "--force")
    assert "training on" not in line  # refused before any training
    assert (model.read_bytes(), checkpoint.read_bytes()) == before
    model.unlink()  # a checkpoint alone is a training's work too
    one_error_line(run_klon(*command), "m.json.ckpt", "--force")
    assert not model.exists() and checkpoint.read_bytes() == before[1]

    result = run_klon(*command, "--epochs", "2", "--force")  # the last --epochs counts
    assert result.returncode == 0, result.stderr
    assert json.loads(model.read_text())["metadata"]["epochs"] == 2
    assert checkpoint.read_bytes() != before[1]


def test_the_outputs_are_checked_before_training(tmp_path):
    (tmp_path / "m.json").write_text("{}")
    with pytest.raises(KlonError, match="already exists"):
        check_outputs([(0.5, tmp_path / "m.json")])
    check_outputs([(0.5, tmp_path / "m.json")], force=True)
    check_outputs([(0.5, tmp_path / "m.json")], resume=True)
    (tmp_path / "folder.json").mkdir()
    with pytest.raises(KlonError, match="is a folder"):
        check_outputs([(0.5, tmp_path / "folder.json")], force=True)
    with pytest.raises(KlonError, match="not a folder"):
        check_outputs([(0.5, tmp_path / "m.json" / "set" / "gain_50.json")])
    check_outputs([(0.5, tmp_path / "new" / "set" / "gain_50.json")])  # made when training


def test_a_dataset_that_fails_midway_leaves_nothing(pair, tmp_path, monkeypatch):
    from klon.train import dataset
    written = []

    def write_then_fail(path, *args, **kwargs):
        if written:
            raise KlonError("disk full")
        written.append(path)
        return write(path, *args, **kwargs)

    write = dataset.audio.write
    monkeypatch.setattr(dataset.audio, "write", write_then_fail)
    with pytest.raises(KlonError, match="disk full"):
        dataset.render_gains([pair / "di.wav"], tmp_path / "ds", [0.0, 1.0])
    assert written and os.listdir(tmp_path) == []  # neither the folder nor its temporary


def test_verify_refuses_a_bad_out_before_running(tmp_path):
    from klon.tools.verify import run_verification
    with pytest.raises(KlonError, match="cannot write the table"):
        run_verification(quick=True, markdown_path=tmp_path / "missing" / "table.md")


# --- item 8: a pair-trained model is a usable model --------------------------------------------

def test_a_pair_trained_model_has_no_gain_and_records_its_data(pair, pair_model):
    metadata = json.loads(pair_model.read_text())["metadata"]
    assert metadata["gain"] is None
    assert metadata["training_data"] == {"input": str(pair / "di.wav"),
                                         "target": str(pair / "amp.wav")}
    assert data_origin(pair) == {"folder": str(pair)}
    assert model_file.read_model(pair_model).gain is None


def test_the_engine_runs_a_gainless_model_at_every_gain_with_a_note(pair, pair_model):
    x = guitar_phrases(RATE, 0.3, 0.3, seed=2)
    with pytest.warns(FixedModelWarning, match="no Gain setting"):
        low = Centaur(RATE, 0.0, engine="neural", model=pair_model)(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FixedModelWarning)
        high = Centaur(RATE, 1.0, engine="neural", model=pair_model)(x)
        stage = make_gain_stage("neural", RATE, 0.3, model=pair_model)
    assert np.all(np.isfinite(low)) and np.max(np.abs(low)) > 1e-3
    np.testing.assert_array_equal(low, high)  # one fixed model: the Gain changes nothing
    assert np.all(np.isfinite(stage(x)))

    result = run_klon("process", pair / "di.wav", pair / "out.wav", "--engine", "neural",
                      "--model", pair_model, "--gain", "0.9")
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("klon: note:")]
    assert len(notes) == 1 and "no Gain setting" in notes[0], result.stderr
    assert sf.info(str(pair / "out.wav")).frames == RATE


def test_a_gainless_model_exports_to_c(pair_model, tmp_path):
    result = run_klon("export", "c", pair_model, tmp_path / "c", "--no-circuit")
    assert result.returncode == 0, result.stderr
    assert "no Gain setting" in result.stderr
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["klon_pedal.c", "klon_pedal.h"]


def test_plot_draws_a_model_from_the_data_it_was_trained_on(pair, pair_model, tmp_path):
    result = run_klon("plot", pair_model, "--out", tmp_path / "pair")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "pair").iterdir()) == [
        "amp-spectrum.png", "amp-time.png", "amp-training.png"]

    # trained on a folder of one's own: the file records the folder
    folder = tmp_path / "mine"
    for part, name in (("input", "di.wav"), ("target", "amp.wav")):
        (folder / part).mkdir(parents=True)
        shutil.copy(pair / name, folder / part / "take.wav")
    document = json.loads(pair_model.read_text())
    document["metadata"].update(gain=0.7, training_data={"folder": str(folder)},
                                validation_clips=["take@0s"])
    (tmp_path / "mine.json").write_text(json.dumps(document))
    result = run_klon("plot", tmp_path / "mine.json", "--out", tmp_path / "mine-plots")
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "mine-plots").iterdir())) == 3

    # the data gone: one line that says to give --data
    shutil.rmtree(folder)
    one_error_line(run_klon("plot", tmp_path / "mine.json", "--out", tmp_path / "gone"),
                   "--data")


# --- item 7: one line, never a traceback -------------------------------------------------------

@pytest.fixture(scope="module")
def deep_json(tmp_path_factory):
    path = tmp_path_factory.mktemp("deep") / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    return path


def test_a_deeply_nested_model_file_is_one_line(pair, deep_json, tmp_path):
    with pytest.raises(KlonError, match="nested too deeply"):
        model_file.read_model(deep_json)
    one_error_line(run_klon("process", pair / "di.wav", tmp_path / "out.wav", "--engine",
                            "neural", "--model", deep_json), "nested too deeply")
    one_error_line(run_klon("plot", deep_json, "--out", tmp_path / "plots"), "nested too deeply")
    assert not (tmp_path / "out.wav").exists() and not (tmp_path / "plots").exists()


def test_a_huge_model_file_is_refused_unread(monkeypatch, tmp_path):
    path = tmp_path / "big.json"
    path.write_text(" " * 2000 + "{}")
    monkeypatch.setattr(model_file, "MAX_FILE_BYTES", 1000)
    with pytest.raises(KlonError, match="larger than"):
        model_file.read_model(path)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_unwritable_outputs_are_one_line(pair_model, tmp_path):
    (tmp_path / "file").write_text("x")
    one_error_line(run_klon("demo", "--out", tmp_path / "file"), "is a file")
    one_error_line(run_klon("demo", "--out", "/proc/klon-demo"), "/proc/klon-demo")
    one_error_line(run_klon("export", "c", pair_model, "/proc/klon-c"), "/proc/klon-c")
    one_error_line(run_klon("plot", pair_model, "--out", "/proc/klon-plots"), "/proc/klon-plots")


@pytest.mark.parametrize("value", ["0.5abc", "-inf", "nan", "1e3", "-0.5"])
def test_bad_knob_text_is_one_line(pair, tmp_path, value):
    result = run_klon("process", pair / "di.wav", tmp_path / "out.wav", "--gain", value)
    one_error_line(result, "gain")
    assert "usage:" not in result.stderr and not (tmp_path / "out.wav").exists()


def test_argparse_errors_are_one_line(capsys):
    for argv in (["process", "a.wav", "b.wav", "--gain", "0.5abc"], ["nothing"],
                 ["train", "--epochs", "many", "--out", "m.json"], []):
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and ": error: " in err, err
    assert cli.join_negative_values(["--gain", "-inf", "--force", "-x", "-1e3"]) == [
        "--gain=-inf", "--force", "-x", "-1e3"]


def test_memory_and_system_errors_are_one_line(monkeypatch, capsys):
    def exhaust(args):
        np.ones(2 ** 62, dtype=np.uint8)  # numpy's _ArrayMemoryError, a MemoryError

    def refuse(args):
        raise PermissionError(13, "Permission denied", "/somewhere/out.wav")

    for handler, words in ((exhaust, "not enough memory"), (refuse, "/somewhere/out.wav")):
        monkeypatch.setitem(cli.tools.HANDLERS, "demo", handler)
        assert cli.main(["demo"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("klon demo: error: ") and words in err


def test_sigterm_while_writing_is_one_line(monkeypatch, capsys):
    """The writer turns SIGTERM into SystemExit(143) so its temporary is removed (test_files
    sends the signal); the command then says why it stopped, and keeps the shell's status."""
    from klon.core.files import TERMINATED

    def terminated(args):
        raise SystemExit(TERMINATED)

    monkeypatch.setitem(cli.tools.HANDLERS, "demo", terminated)
    with pytest.raises(SystemExit) as stopped:
        cli.main(["demo"])
    assert stopped.value.code == TERMINATED == 143
    assert capsys.readouterr().err == "klon: terminated\n"


# --- --version and help texts ------------------------------------------------------------------

def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"klon {cli.version()}"
    assert cli.version() == klon.__version__  # pyproject.toml and the package agree
    result = run_klon("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"klon {cli.version()}"


def _parsers(parser, name="klon"):
    """Every (name, parser) of the command line, sub-commands included."""
    yield name, parser
    for action in parser._actions:  # argparse offers no public walk over sub-parsers
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def _entries(help_text):
    """An option's entry in a help text, by its first flag: its lines joined."""
    entries, current = {}, None
    for line in help_text.splitlines():
        if re.match(r"^  -", line):
            current = line.split()[0].rstrip(",")
            entries[current] = line
        elif current and line.startswith("   "):
            entries[current] += " " + line.strip()
        else:
            current = None
    return entries


def test_every_help_text_shows_the_defaults():
    checked = 0
    for name, parser in _parsers(cli.parser()):
        entries = _entries(parser.format_help())
        for action in parser._actions:
            default = action.default
            if (not action.option_strings or action.help == argparse.SUPPRESS
                    or action.nargs == 0 or default is None or default is False):
                continue
            entry = entries[action.option_strings[0]]
            assert "default" in entry.lower(), f"{name}: {entry}"
            checked += 1
    assert checked > 30
