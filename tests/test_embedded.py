"""`klon export c`: the exported C99 compiles with strict flags, matches the Python engine on a
guitar clip with the Gain moving, and runs the same on an emulated Cortex-M7 (QEMU), where its
instructions per sample are counted. Needs gcc, arm-none-eabi-gcc + newlib and qemu-system-arm
(`scripts/setup --embedded`, which `scripts/test` runs): missing tools fail, they do not skip."""
import json

import numpy as np
import pytest

from klon.cli import main
from klon.export.c99.neural_c import FAST_TANH, export_c, tanh_error
from klon.export.cortex_m7 import measure as m

CLIP = m.reference_clip(0.5)
# mid-clip the Gain glides 0.5 -> 1, Treble 0.5 -> 0.25 and Level 0.5 -> 0.75
NEURAL_PEDAL = m.Case(treble_after=0.25, level_after=0.75)
NEURAL_BANK = m.Case(target="gain")


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    export_c(folder, circuit=True, force=True)
    return folder


def relative_error(y, reference):
    return float(np.max(np.abs(y - reference)) / np.max(np.abs(reference)))


@pytest.mark.parametrize("case", [NEURAL_PEDAL, NEURAL_BANK], ids=["pedal", "gain stage"])
def test_host_build_matches_the_python_engine(library, case):
    python = m.python_output(CLIP, case)
    exact = m.HostBuild(library, case).run(CLIP)
    fast = m.HostBuild(library, case, defines=["KLON_FAST_ACTIVATIONS"]).run(CLIP)
    assert np.all(np.isfinite(exact)) and np.max(np.abs(python)) > 0.1
    # within 1e-5 (1e-4 with the cheap activations) of the signal's peak
    assert relative_error(exact, python) <= 1e-5
    assert relative_error(fast, python) <= 1e-4
    assert np.max(np.abs(fast - exact)) > 0  # the option does change the maths


def test_a_shorter_history_saves_ram_at_a_small_cost(library):
    python = m.python_output(CLIP, NEURAL_PEDAL)
    y = m.HostBuild(library, NEURAL_PEDAL, defines=["KLON_HISTORY=512"]).run(CLIP)
    assert relative_error(y, python) <= 1e-5


@pytest.mark.parametrize("kind, hidden, inputs", [("lstm", 8, 1), ("gru", 16, 1), ("gru", 5, 2)])
def test_other_model_shapes_match_the_python_engine(tmp_path, kind, hidden, inputs):
    """LSTM, other widths (odd ones too) and a Gain-conditioned model (audio and Gain in)."""
    from test_engine import random_model
    if inputs == 1:
        for gain in (0, 100):
            document = random_model(kind, hidden, seed=gain)
            document["metadata"] = {"gain": gain / 100}
            (tmp_path / f"gain_{gain}.json").write_text(json.dumps(document))
        source = dict(models=tmp_path)
    else:
        (tmp_path / "one.json").write_text(json.dumps(random_model(kind, hidden, inputs)))
        source = dict(model=tmp_path / "one.json")
    export_c(tmp_path / "c", **source)
    case = m.Case(target="gain", gain=0.25, move_at=5000, gain_after=0.75)
    x = CLIP[:10_000]
    y = m.HostBuild(tmp_path / "c", case).run(x)
    if inputs == 1:
        python = m.python_output(x, case, models=tmp_path)
    else:
        from klon.neural import ModelBank
        bank, python = ModelBank([source["model"]], case.gain), np.empty_like(x)
        for start in range(0, len(x), m.BLOCK):
            if start <= case.move_at < start + m.BLOCK:
                bank.gain = case.gain_after
            python[start:start + m.BLOCK] = bank.process(x[start:start + m.BLOCK])
    assert np.max(np.abs(python)) > 0.05
    assert relative_error(y, python) <= 1e-5


def test_the_fast_tanh_is_as_documented():
    assert tanh_error(FAST_TANH) < 2e-6


def test_unsupported_rate_is_refused(library):
    build = m.HostBuild(library, NEURAL_PEDAL)
    assert build.init(48_000.0, 0.5) != 0
    assert build.init(44_100.0, 0.5) == 0


def test_cortex_m7_runs_the_pedal_as_the_host_does_and_is_counted(library, tmp_path):
    x = CLIP[:8192]
    case = m.Case(move_at=4096, treble_after=0.25, level_after=0.75)
    run = m.cortex_m7(library, case, x)
    host = m.HostBuild(library, case).run(x)
    assert np.max(np.abs(run.output - host)) <= 1e-6
    # a GRU-8 step is a few hundred multiply-adds and 24 activations: thousands, not millions
    assert 500 < run.instructions_per_sample < 5000
    assert run.glide_instructions_per_sample > run.instructions_per_sample
    assert run.flash_bytes < 32 * 1024 and run.state_bytes > 0


def test_cortex_m7_target_build_meets_the_targets(library):
    """-O3 -ffp-contract=fast, fast activations, a 512-sample history: at most 1500 instructions
    per sample (counts are deterministic), firmware flash within 32 KB, RAM within 4 KB."""
    x = CLIP[:8192]
    case = m.Case(move_at=4096, treble_after=0.25, level_after=0.75)
    run = m.cortex_m7(library, case, x, "-O3", fast_activations=True,
                      flags=("-ffp-contract=fast",), defines=("KLON_HISTORY=512",))
    python = m.python_output(x, case)
    assert relative_error(run.output, python) <= 1e-4
    assert run.instructions_per_sample <= 1500
    assert run.firmware_flash_bytes <= 32 * 1024
    assert run.state_bytes + run.stack_bytes <= 4 * 1024


def test_cortex_m7_circuit_gain_stage_matches_the_host(library):
    x = CLIP[:4096]
    case = m.Case(engine="circuit", target="gain", move_at=2048)
    run = m.cortex_m7(library, case, x)
    host = m.HostBuild(library, case).run(x)
    assert np.max(np.abs(run.output - host)) <= 1e-6
    assert 300 < run.instructions_per_sample < 10_000


def test_export_command(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["export", "c", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["klon_circuit_gain.c", "klon_circuit_gain.h", "klon_pedal.c",
                     "klon_pedal.h"]
    before = (out / "klon_pedal.c").read_bytes()
    assert main(["export", "c", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (out / "klon_pedal.c").read_bytes() == before
    assert main(["export", "c", str(tmp_path / "none.json"), str(tmp_path / "d")]) == 2
    assert "none.json" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
    (tmp_path / "file").write_text("x")
    assert main(["export", "c", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err
