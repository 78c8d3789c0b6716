"""`klon bench`: runs on a fraction of a second of audio and writes well-formed files. No test
asserts a timing: the machine may be busy with anything."""
import csv
import json
import sys

import numpy as np
import pytest
from conftest import run_klon

from klon.cli import main
from klon.neural.bank import shipped_sets
from klon.neural.gain_stage import DEFAULT_MODELS, DEFAULT_SET
from klon.tools import bench

RECORD_KEYS = {"engine", "block_size", "sample_rate", "channels", "seconds_per_second",
               "ns_per_sample"}


def has_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """One end-to-end run as a user starts it: every engine at every default block size."""
    out = tmp_path_factory.mktemp("bench")
    run = run_klon("bench", "--seconds", "0.2", "--repeats", "2", "--out", out, "--json")
    return run, out


def test_json_on_stdout_one_record_per_engine_and_block(cli_run):
    run, _ = cli_run
    assert run.returncode == 0, run.stderr
    records = json.loads(run.stdout)  # the JSON alone: tables and progress went to stderr
    engines = ["circuit", "neural", "gru"] + (["torch-gru"] if has_torch() else [])
    assert [(r["engine"], r["block_size"]) for r in records] == \
        [(e, b) for e in engines for b in bench.BLOCKS]
    for r in records:
        assert set(r) == RECORD_KEYS
        assert (r["sample_rate"], r["channels"]) == (44_100, 2)
        s = r["seconds_per_second"]
        assert 0 < s["min"] <= s["median"] <= s["max"]
        assert r["ns_per_sample"] > 0
    assert "40/40" in run.stderr or "30/30" in run.stderr  # the progress bar's last step
    assert "seed circuit" in run.stderr


def test_files_are_well_formed(cli_run):
    run, out = cli_run
    with open(out / "bench.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == bench.CSV_COLUMNS
    assert len(rows) == len(json.loads(run.stdout))
    assert all(float(r["seconds_per_second_median"]) > 0 for r in rows)

    saved = json.loads((out / "bench.json").read_text())
    assert saved["records"] == json.loads(run.stdout)
    assert {"cpu", "cores", "python", "numpy", "numba", "torch"} <= set(saved["machine"])

    md = (out / "bench.md").read_text()
    assert md.startswith("`klon bench --seconds 0.2 --repeats 2`")
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| block | circuit | neural | gru")
    assert "neural/circuit" in table[0] and "seed circuit" in table[0]
    assert [line.split(" | ")[0][2:] for line in table if line[2].isdigit()] == \
        [str(b) for b in bench.BLOCKS]
    assert "| 8 |" in md and "0.0723 | 0.0529 |" in md  # the seed's block-8 row

    png = (out / "bench.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    assert not [p.name for p in out.iterdir() if p.suffix == ".tmp"]


def test_the_neural_engines_use_the_default_set_for_the_rate_unless_told():
    for rate, name in ((44_100, DEFAULT_SET), (48_000, DEFAULT_MODELS[48_000]),
                       (96_000, DEFAULT_SET)):
        assert bench.resolve_models(None, rate) == name
        assert name in shipped_sets()
    assert bench.resolve_models("ltspice", 48_000) == "ltspice"


def test_torch_missing_is_a_note_not_an_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    result = bench.run_bench(0.1, [256], ["gru", "torch-gru"], repeats=1, log=sys.stderr)
    assert [r["engine"] for r in result["records"]] == ["gru"]
    assert "torch is not installed" in result["notes"]["torch-gru"]
    header, rows = bench._table(result)
    assert "torch-gru/gru" not in header and rows[0][:1] == ["256"]


def test_streaming_times_whole_blocks_only():
    calls = []
    runner = bench.Runner(lambda block, out: calls.append(block.shape), lambda: None)
    audio = np.zeros((2, 1000), dtype=np.float32)
    times, frames = bench.time_runner(runner, audio, 300, 2, bench.CLOCKS["wall"])
    assert frames == 900 and len(times) == 2
    assert calls == [(2, 300)] * 7  # one warm-up call, then three blocks per repeat


@pytest.mark.parametrize("args, message", [
    (["--engines", "circuit,fuzz"], "unknown engine(s) fuzz"),
    (["--blocks", "8,0"], "block sizes must be positive"),
    (["--blocks", "8,big"], "--blocks: expected a comma list"),
    (["--seconds", "0.01"], "shorter than one block of 4096"),
    (["--repeats", "0"], "--repeats must be at least 1"),
    (["--models", "no-such-set"], "no model set 'no-such-set'"),
    (["--engines", "circuit", "--models", "ltspice"], "--models chooses the models"),
    (["--sample-rate", "8000", "--engines", "circuit"], "unsupported sample rate"),
    (["--engines", "vst3-circuit"], "the vst3 engines need the plugins"),
    (["--engines", "vst3-neural", "--plugins", "no-such-folder"],
     "no klon_stereo.vst3 in no-such-folder"),
])
def test_bad_options_end_in_one_line(args, message, tmp_path, capsys):
    assert main(["bench", "--out", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("klon: error: ") and message in err[-1]
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_the_cost_of_a_block_call_is_what_small_blocks_add():
    # 0.05 s/s at block 8, 0.03 at 4096: 8 frames at 44.1 kHz cost 0.02 * 8 / 44100 s more
    result = {"settings": {"blocks": [8, 64, 4096], "engines": ["circuit", "neural"],
                           "sample_rate": 44_100},
              "records": [{"engine": e, "block_size": b, "seconds_per_second": {"median": v}}
                          for e, b, v in (("circuit", 8, 0.05), ("circuit", 64, 0.04),
                                          ("circuit", 4096, 0.03), ("neural", 8, 0.01),
                                          ("neural", 64, 0.004), ("neural", 4096, 0.004))]}
    overhead = bench.call_overhead(result)
    assert overhead["circuit"] == pytest.approx(1e6 * 0.02 * 8 / 44_100)
    assert overhead["neural"] == pytest.approx(1e6 * 0.006 * 8 / 44_100)
    result["settings"]["blocks"] = [64]
    assert bench.call_overhead(result) == {}
