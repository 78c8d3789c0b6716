"""A sweep's leaderboard: every trial's settings, how it ended, its best validation ESR and what
its model costs to run, with the Pareto front of ESR against cost marked.

A trial trained on moving-Gain data (`klon dataset --gain moving`) is also judged at each of
GAINS held (`check_gains`): its model against the circuit on its own validation segments, the
worst Gain its score. Pooled validation ESR, where every segment has its own random Gain path,
can rank first a model that is weak at one end of the knob (docs/conditioned.md has a sweep
where it did); a user turns the knob anywhere, so where that figure exists it ranks the trials,
picks best.json and draws the Pareto front.

Cost is measured after the sweep, one model at a time on a quiet driver (never while trials
train beside it): nanoseconds per sample in klon's engine (the model alone, mono, 64-sample
blocks, CPU clock, best of REPEATS), and where the ARM toolchain and QEMU are here,
instructions per sample of the exported C on the emulated Cortex-M7 (the gain stage alone,
knobs still, -O2). The rows come from klon.train.sweep; `write` puts the table, CSV,
Markdown, JSON and the plot in the sweep's folder, and the best model as best.json.
"""
import csv
import io
import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from klon.core.errors import KlonError
from klon.core.figures import pyplot, save_figure
from klon.core.files import atomic_write
from klon.core.metrics import clip_esr

BLOCK = 64  # a plugin host's typical block
SECONDS = 1.0  # of noise timed per repeat
REPEATS = 5
M7_SECONDS = 1.0  # of the reference clip on the emulated Cortex-M7
# the Gain settings a model of moving-Gain data is judged at (issue 14's 13)
GAINS = (0.0, 0.1, 0.2, 0.25, 0.33, 0.45, 0.5, 0.6, 0.7, 0.8, 0.875, 0.95, 1.0)
BATCH = 32  # validation segments per engine call (klon takes up to 64 channels)


@dataclass
class Entry:
    trial: str  # Tune's trial id
    cell: str
    hidden: int
    knobs: str  # the knob inputs, "+"-joined; "-" for none
    learning_rate: float
    seed: int
    data: str
    status: str  # finished | stopped early | failed
    epochs: int
    best_epoch: int
    best_esr: float | None  # best validation ESR, a fraction
    seconds: float
    ns_per_sample: float | None = None
    cortex_m7: float | None = None  # instructions per sample
    pareto: bool = False
    model: str | None = None  # the trial's best model file
    error: str = ""
    worst_gain_esr: float | None = None  # moving-Gain data: ESR at the worst of GAINS
    worst_gain: float | None = None  # ... and that Gain

    @property
    def score(self) -> float | None:
        """What ranks the trial: its worst Gain's ESR where judged so, else validation ESR."""
        return self.best_esr if self.worst_gain_esr is None else self.worst_gain_esr


def rank(rows: list[Entry]) -> None:
    """Best first (by score), the trials with none (failed) last."""
    rows.sort(key=lambda e: (e.score is None, e.score or 0.0))


def check_gains(rows: list[Entry], folders: dict[str, tuple], log=sys.stderr) -> None:
    """For each trial whose data is a moving-Gain dataset (folders: {data name: (folder,
    gain)}), its model's pooled ESR at each of GAINS on its own validation segments: the
    circuit that rendered the dataset, the Gain held, against the model in klon's engine (fed
    that Gain where it has the input). Keeps the worst and where it was; then ranks. Trials
    with the same validation segments (the same seed) share the circuit's renders."""
    from klon.neural import ModelBank
    from klon.neural.model_file import read_model
    from klon.train.data import load, read_manifest
    from klon.train.dataset import render_target
    groups = {}  # (folder, validation segments) -> [(entry, its model in the engine)]
    for entry in rows:
        folder = folders[entry.data][0]
        if entry.model is None or "gain" not in read_manifest(folder).get("knobs", ()):
            continue
        spec = read_model(entry.model)
        key = folder, tuple(spec.metadata["validation_clips"])
        groups.setdefault(key, []).append((entry, ModelBank([spec], GAINS[0])))
    for (folder, names), trials in groups.items():
        data, manifest = load(folder), read_manifest(folder)
        where = {name: i for i, name in enumerate(data.names)}
        x = data.inputs[[where[name] for name in names]]
        start = data.score_start
        scores = {entry.trial: [] for entry, _ in trials}
        for gain in GAINS:
            held = (data.sample_rate, gain, manifest["diode"], manifest["oversampling"],
                    manifest["band_limited"])
            y = np.stack([render_target(held, clip, None) for clip in x])
            for entry, bank in trials:
                bank.gain = gain  # each call below starts from rest at this Gain
                prediction = np.concatenate([bank(x[i:i + BATCH])
                                             for i in range(0, len(x), BATCH)])
                scores[entry.trial].append(clip_esr(prediction[:, start:], y[:, start:])[1])
        for entry, _ in trials:
            worst = int(np.argmax(scores[entry.trial]))
            entry.worst_gain_esr = float(scores[entry.trial][worst])
            entry.worst_gain = GAINS[worst]
            print(f"trial {entry.trial}: worst Gain {GAINS[worst]:g}, ESR "
                  f"{100 * entry.worst_gain_esr:.3f} % on its validation segments", file=log,
                  flush=True)
    rank(rows)


def measure_costs(rows: list[Entry], cortex_m7: str | bool = "auto", log=sys.stderr) -> None:
    """Each model's cost (see the module notes), once per shape: cell, width and inputs."""
    from klon.neural.model_file import read_model
    from klon.tools.bench import CLOCKS, model_runner, time_runner
    if cortex_m7 == "auto":
        cortex_m7 = _toolchain_here()
    elif cortex_m7:
        _toolchain_here(required=True)
    noise = np.random.default_rng(0).uniform(-1, 1, (1, int(44_100 * SECONDS)))
    noise = noise.astype(np.float32)
    measured = {}
    for entry in rows:
        if entry.model is None:
            continue
        spec = read_model(entry.model)
        shape = (spec.kind, spec.hidden_size, spec.inputs)
        if shape not in measured:
            runner, _ = model_runner(spec, 1)
            times, frames = time_runner(runner, noise, BLOCK, REPEATS, CLOCKS["cpu"])
            ns = 1e9 * min(times) / frames
            m7 = _cortex_m7(entry.model) if cortex_m7 else None
            measured[shape] = ns, m7
            m7_text = f", {m7:.0f} instructions/sample on the Cortex-M7" if m7 else ""
            print(f"cost of {spec.kind.upper()}-{spec.hidden_size} with {spec.inputs} input(s): "
                  f"{ns:.1f} ns/sample{m7_text}", file=log, flush=True)
        entry.ns_per_sample, entry.cortex_m7 = measured[shape]
    mark_pareto(rows)


def _toolchain_here(required=False) -> bool:
    from klon.export.toolchain import find_tool
    try:
        find_tool("arm-none-eabi-gcc")
        find_tool("qemu-system-arm")
    except KlonError:
        if required:
            raise
        return False
    return True


def _cortex_m7(model: str) -> float:
    """Instructions per sample of the model's exported C, the gain stage alone, knobs still."""
    from klon.export.c99.neural_c import export_c
    from klon.export.cortex_m7.measure import Case, cortex_m7, reference_clip
    clip = reference_clip(M7_SECONDS)
    with tempfile.TemporaryDirectory(prefix="klon-sweep-m7-") as folder:
        export_c(folder, model=model, force=True)
        case = Case(engine="neural", target="gain", move_at=len(clip) + 1)
        return cortex_m7(folder, case, clip).instructions_per_sample


def mark_pareto(rows: list[Entry]) -> None:
    """Mark the trials no other beats on both score (ESR) and ns per sample (ties kept)."""
    scored = [e for e in rows if e.score is not None and e.ns_per_sample is not None]
    for entry in scored:
        entry.pareto = not any(
            o.score <= entry.score and o.ns_per_sample <= entry.ns_per_sample
            and (o.score < entry.score or o.ns_per_sample < entry.ns_per_sample)
            for o in scored)


COLUMNS = ("rank", "trial", "cell", "hidden", "knobs", "learning_rate", "seed", "data", "status",
           "epochs", "best_epoch", "best_esr_percent", "worst_gain_esr_percent", "worst_gain",
           "ns_per_sample", "cortex_m7", "pareto", "seconds", "error")


def _row(rank, e: Entry) -> dict:
    return {"rank": rank, "trial": e.trial, "cell": e.cell, "hidden": e.hidden, "knobs": e.knobs,
            "learning_rate": f"{e.learning_rate:.3g}", "seed": e.seed, "data": e.data,
            "status": e.status, "epochs": e.epochs, "best_epoch": e.best_epoch,
            "best_esr_percent": "" if e.best_esr is None else f"{100 * e.best_esr:.4f}",
            "worst_gain_esr_percent": ("" if e.worst_gain_esr is None
                                       else f"{100 * e.worst_gain_esr:.4f}"),
            "worst_gain": "" if e.worst_gain is None else f"{e.worst_gain:g}",
            "ns_per_sample": "" if e.ns_per_sample is None else f"{e.ns_per_sample:.1f}",
            "cortex_m7": "" if e.cortex_m7 is None else f"{e.cortex_m7:.0f}",
            "pareto": "yes" if e.pareto else "", "seconds": f"{e.seconds:.0f}",
            "error": e.error}


def csv_text(rows: list[Entry]) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, COLUMNS, lineterminator="\n")
    writer.writeheader()
    for rank, entry in enumerate(rows, 1):
        writer.writerow(_row(rank, entry))
    return text.getvalue()


def markdown(rows: list[Entry]) -> str:
    head = ("| # | trial | cell | hidden | knobs | lr | seed | data | status | epochs | best "
            "ESR % | worst Gain: ESR % | at Gain | ns/sample | M7 instr/sample | Pareto |")
    numeric = {"#", "hidden", "lr", "seed", "epochs", "best ESR %", "worst Gain: ESR %",
               "at Gain", "ns/sample", "M7 instr/sample"}
    lines = [head, "|" + "|".join("---:" if c.strip() in numeric else "---"
                                  for c in head.strip("|").split("|")) + "|"]
    for rank, e in enumerate(rows, 1):
        r = _row(rank, e)
        status = e.status if not e.error else f"failed: {e.error}"
        lines.append(f"| {rank} | {e.trial} | {e.cell} | {e.hidden} | {e.knobs} | "
                     f"{r['learning_rate']} | {e.seed} | {e.data} | {status} | {e.epochs} | "
                     f"{r['best_esr_percent'] or '-'} | {r['worst_gain_esr_percent'] or '-'} | "
                     f"{r['worst_gain'] or '-'} | {r['ns_per_sample'] or '-'} | "
                     f"{r['cortex_m7'] or '-'} | {'**yes**' if e.pareto else ''} |")
    return "\n".join(lines) + "\n"


def text_table(rows: list[Entry]) -> str:
    header = (f"{'#':>3} {'trial':<12} {'cell':<5} {'hid':>4} {'knobs':<6} {'lr':>8} "
              f"{'seed':>4} {'data':<10} {'status':<14} {'ep':>4} {'ESR %':>8} {'worst %':>8} "
              f"{'at':>5} {'ns/smp':>7} {'M7':>6} P")
    lines = [header]
    for rank, e in enumerate(rows, 1):
        r = _row(rank, e)
        lines.append(f"{rank:>3} {e.trial[-12:]:<12} {e.cell:<5} {e.hidden:>4} {e.knobs:<6} "
                     f"{r['learning_rate']:>8} {e.seed:>4} {e.data[:10]:<10} {e.status:<14} "
                     f"{e.epochs:>4} {r['best_esr_percent'] or '-':>8} "
                     f"{r['worst_gain_esr_percent'] or '-':>8} {r['worst_gain'] or '-':>5} "
                     f"{r['ns_per_sample'] or '-':>7} {r['cortex_m7'] or '-':>6} "
                     f"{'*' if e.pareto else ''}" + (f"  {e.error}" if e.error else ""))
    return "\n".join(lines) + "\n"


def plot(rows: list[Entry], path) -> None:
    """Validation ESR against ns per sample (and against Cortex-M7 instructions where
    measured), the Pareto front drawn through its trials."""
    plt = pyplot()
    scored = [e for e in rows if e.score is not None and e.ns_per_sample is not None]
    y_label = ("ESR at the worst Gain (%)" if any(e.worst_gain_esr is not None for e in scored)
               else "best validation ESR (%)")
    m7 = [e for e in scored if e.cortex_m7 is not None]
    panels = [("ns_per_sample", "ns per sample (klon engine, mono, block 64)")]
    if m7:
        panels.append(("cortex_m7", "instructions per sample (Cortex-M7, -O2)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8), squeeze=False)
    for ax, (field, label) in zip(axes[0], panels, strict=True):
        points = m7 if field == "cortex_m7" else scored
        for cell, marker in (("gru", "o"), ("lstm", "s")):
            for conditioned, color in ((True, "tab:blue"), (False, "tab:orange")):
                group = [e for e in points if e.cell == cell and (e.knobs != "-") == conditioned]
                if group:
                    ax.scatter([getattr(e, field) for e in group],
                               [100 * e.score for e in group], marker=marker, color=color,
                               label=f"{cell.upper()}, {'knobs' if conditioned else 'audio only'}",
                               alpha=0.8)
        front = sorted((e for e in points if e.pareto), key=lambda e: getattr(e, field))
        if front:
            ax.step([getattr(e, field) for e in front], [100 * e.score for e in front],
                    where="post", color="black", lw=1, label="Pareto front (ns/sample)")
        for e in points:
            ax.annotate(f"{e.hidden}", (getattr(e, field), 100 * e.score), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel(y_label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_title("sweep: ESR against cost (numbers: hidden units)")
    fig.tight_layout()
    save_figure(fig, path)


def write(rows: list[Entry], out: str | os.PathLike, log=sys.stderr) -> list[Path]:
    """leaderboard.{txt,csv,md,json,png} and best.json (the best model) into `out`."""
    out = Path(out)
    written = [atomic_write(out / "leaderboard.txt", text_table(rows)),
               atomic_write(out / "leaderboard.csv", csv_text(rows)),
               atomic_write(out / "leaderboard.md", markdown(rows)),
               atomic_write(out / "leaderboard.json",
                            json.dumps([asdict(e) for e in rows], indent=1) + "\n")]
    plot(rows, out / "leaderboard.png")
    written.append(out / "leaderboard.png")
    best = next((e for e in rows if e.model is not None), None)
    if best is not None:
        written.append(atomic_write(out / "best.json", Path(best.model).read_text()))
    print(text_table(rows), file=log, end="")
    if best is not None:
        worst = ("" if best.worst_gain_esr is None else
                 f", {100 * best.worst_gain_esr:.3f} % at its worst Gain ({best.worst_gain:g})")
        print(f"best: trial {best.trial}, {best.cell.upper()}-{best.hidden}, validation ESR "
              f"{100 * best.best_esr:.3f} %{worst} -> {out / 'best.json'}", file=log)
    return written
