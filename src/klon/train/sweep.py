"""`klon sweep`: many trainings on Ray Tune, compared on one leaderboard.

A sweep (klon.train.sweep_config) lists what is searched: the recurrent layer, its width, the
knob inputs, the learning rate, the seed and the data. Each trial is klon's own Trainer in a Ray
worker (one core by default, one torch and one numba thread), reporting its validation ESR after
every epoch. ASHA stops the poor trials early: at each rung (grace, grace x reduction, ...
epochs) only the best 1/reduction go on.

Everything lands in the output folder:
    sweep.toml          the sweep as started (a resumed sweep must be the same)
    data/NAME/          the circuit renders of [data.NAME] tables, made once, on the same Ray
    tune/               Ray Tune's experiment: every trial's results and its last checkpoint
                        (the trainer's, which resumes exactly, and its best model so far)
    models/TRIAL.json   each trial's best model; best.json the best of all (ready for --model)
    leaderboard.*       the table (klon.train.leaderboard)

Interrupted (Ctrl-C, a lost machine), the same command resumes: finished trials keep their
results, unfinished ones go on from their last epoch, failed ones stay failed.

This module needs Ray (the `scale` extra): the CLI checks for it before importing it.
"""
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from ray.tune import Callback

from klon.core.errors import KlonError
from klon.core.files import atomic_write
from klon.train import leaderboard
from klon.train.leaderboard import Entry
from klon.train.sweep_config import SweepConfig, count_trials, trial_settings

EXPERIMENT = "sweep"  # Tune's name for the experiment, a folder in OUT/tune
TRIAL_STATE = "trainer.pt"  # in a trial's checkpoint: the trainer's own checkpoint
TRIAL_MODEL = "model.json"  # and the trial's best model so far
METRIC = "best_esr"  # what ASHA ranks by: the best validation ESR so far (see leaderboard.rank)
ENDED = "ended.json"  # in OUT/tune: how each trial ended, as the driver saw it


def check_out(config: SweepConfig, out: Path) -> bool:
    """Whether `out` holds this sweep begun (it resumes); refuse a folder holding anything else."""
    if not out.exists():
        return False
    if not out.is_dir():
        raise KlonError(f"--out: '{out}' is a file: give a folder for the sweep")
    saved = out / "sweep.toml"
    if not saved.exists():
        if any(out.iterdir()):
            raise KlonError(f"--out: '{out}' holds other files: give a new or empty folder")
        return False
    if saved.read_text() != config.text:
        raise KlonError(f"--out: '{out}' holds another sweep (its sweep.toml differs from "
                        f"'{config.path}'): give a new folder, or the same sweep file to resume")
    return True


def data_folders(config: SweepConfig, out: Path, log=sys.stderr) -> dict[str, tuple]:
    """{name: (folder, gain)} for every [data.*] table; renders the missing ones into
    OUT/data/NAME, on the connected Ray (a render lands whole or not at all)."""
    from klon.train.dataset import render_gains
    folders = {}
    for name, source in config.data.items():
        if source.folder is not None:
            folders[name] = (str(source.folder), source.gain)
            continue
        folder = out / "data" / name
        if not (folder / "dataset.json").exists():
            settings = dict(source.render)
            inputs, gain = settings.pop("inputs"), settings.pop("gain", 0.5)
            renamed = {"synth": "synth_seconds", "tones": "tone_seconds"}
            settings = {renamed.get(k, k): v for k, v in settings.items()}
            print(f"rendering [data.{name}] into {folder}", file=log, flush=True)
            shutil.rmtree(folder, ignore_errors=True)  # an empty folder left by a failed try
            render_gains(inputs, folder, [gain if gain == "moving" else float(gain)],
                         log=log, use_ray=True, **settings)
        folders[name] = (str(folder), None)
    return folders


def trial_data(folders: dict, name: str, knobs: list | None):
    """The trial's training data: the [data.NAME] folder, with only the `knobs` inputs (None:
    all the data has)."""
    from klon.train.data import load
    folder, gain = folders[name]
    data = load(folder, gain)
    return data if knobs is None else data.with_knobs(knobs)


def trial_config(train, settings: dict, gpus: float = 0.0):
    """The TrainConfig of a trial: the sweep's [train] with the trial's own settings, on the
    CPU unless the trial has a GPU."""
    from dataclasses import replace
    return replace(train, cell=settings["cell"], hidden=int(settings["hidden"]),
                   learning_rate=float(settings["learning_rate"]), seed=int(settings["seed"]),
                   device="cuda" if gpus > 0 else "cpu")


def run_trial(params: dict, *, plan: dict) -> None:
    """One trial, in a Ray worker: train, reporting to Tune after every epoch with a checkpoint;
    resumes from Tune's checkpoint when the trial is restored."""
    import numba
    import torch
    from ray import tune

    from klon.train import export
    from klon.train.jobs import data_origin
    from klon.train.trainer import Trainer
    threads = max(1, int(plan["cpus_per_trial"]))
    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    settings = trial_settings(params, plan["fixed"])
    data = trial_data(plan["folders"], settings["data"], settings["knobs"])
    data_folder = plan["folders"][settings["data"]][0]
    trainer = Trainer(data, trial_config(plan["train"], settings, plan["gpus_per_trial"]),
                      log=None)
    best_model = None  # the best model file's text so far
    restored = tune.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as folder:
            trainer.resume(os.path.join(folder, TRIAL_STATE))
            best_model = Path(folder, TRIAL_MODEL).read_text()

    def report(trainer):
        nonlocal best_model
        epoch = trainer.history.epoch[-1]
        with tempfile.TemporaryDirectory(prefix="klon-trial-") as folder:
            if trainer.best_epoch == epoch:  # a new best: the model file is rewritten
                export.save(Path(folder, TRIAL_MODEL), trainer.model,
                            {**trainer.metadata(), "training_data": data_origin(data_folder)})
                best_model = Path(folder, TRIAL_MODEL).read_text()
            else:
                atomic_write(Path(folder, TRIAL_MODEL), best_model)
            trainer.save_checkpoint(Path(folder, TRIAL_STATE))
            h = trainer.history
            tune.report({"epoch": epoch, METRIC: trainer.best_esr,
                         "validation_esr": h.validation_esr[-1], "train_esr": h.train_esr[-1],
                         "best_epoch": trainer.best_epoch, "seconds": trainer.seconds,
                         "finished": trainer.finished},
                        checkpoint=tune.Checkpoint.from_directory(folder))

    trainer.run(after_epoch=report)


def record_end(storage: Path, trial_id: str, how: str) -> None:
    """Note how a trial ended (the driver's callback, in OUT/tune/ended.json): a trial not
    noted when the sweep stops was interrupted, and resumes."""
    path = Path(storage) / ENDED
    ended = json.loads(path.read_text()) if path.exists() else {}
    ended[trial_id] = how
    atomic_write(path, json.dumps(ended, indent=1) + "\n")


def _error_line(error) -> str:
    cause = getattr(error, "cause", None) or error
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}"


def entries(results, config: SweepConfig) -> list[Entry]:
    """The leaderboard's rows from Tune's ResultGrid, best first; each trial's model file
    copied to OUT/models (OUT: the folder above Tune's). A sweep with trials that have not
    ended (interrupted) is refused: it resumes."""
    from klon.neural.model_file import read_model
    out = Path(results.experiment_path).parent.parent
    ended_path = Path(results.experiment_path).parent / ENDED
    ended = json.loads(ended_path.read_text()) if ended_path.exists() else {}
    results = sorted(results, key=lambda r: r.path or "")
    ids = [next((t for t in ended if r.path and f"_{t}_" in os.path.basename(r.path)), None)
           for r in results]
    if any(r.error is None and t is None for r, t in zip(results, ids, strict=True)):
        raise KlonError(f"the sweep stopped before every trial ended: run the same command "
                        f"again to resume it ({out})")
    (out / "models").mkdir(exist_ok=True)
    rows = []
    for result, trial in zip(results, ids, strict=True):
        settings = trial_settings(result.config, config.fixed)
        trial = trial or os.path.basename(result.path)
        metrics = result.metrics or {}
        knobs = settings["knobs"]
        entry = Entry(trial, settings["cell"], int(settings["hidden"]),
                      "(all)" if knobs is None else "+".join(knobs) or "-",
                      float(settings["learning_rate"]), int(settings["seed"]), settings["data"],
                      ended.get(trial, "failed"), int(metrics.get("epoch", 0)),
                      int(metrics.get("best_epoch", 0)), metrics.get(METRIC),
                      float(metrics.get("seconds", 0.0)))
        if result.error is not None:
            entry.status, entry.error = "failed", _error_line(result.error)
        elif result.checkpoint is not None:
            model = out / "models" / f"{trial}.json"
            with result.checkpoint.as_directory() as folder:
                atomic_write(model, Path(folder, TRIAL_MODEL).read_text())
            entry.model = str(model)
            entry.knobs = "+".join(read_model(model).metadata["inputs"][1:]) or "-"
        rows.append(entry)
    leaderboard.rank(rows)
    return rows


def _tuner(config: SweepConfig, plan: dict, storage: Path, resume: bool):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    trainable = tune.with_resources(tune.with_parameters(run_trial, plan=plan),
                                    {"cpu": config.cpus_per_trial,
                                     "gpu": config.gpus_per_trial})
    path = storage / EXPERIMENT
    if resume and tune.Tuner.can_restore(str(path)):
        try:
            return tune.Tuner.restore(str(path), trainable, resume_unfinished=True,
                                      resume_errored=False, restart_errored=False)
        except (AttributeError, ImportError) as error:  # pickled by another klon or Ray
            raise KlonError(f"cannot resume the sweep in '{storage.parent}': it was begun by "
                            f"another version of klon or Ray ({error}); resume it with that "
                            f"version, or start again in a new --out") from None
    space = {}
    for key, values in config.space.items():
        if isinstance(values, dict):
            (distribution, (low, high)), = values.items()
            space[key] = (tune.loguniform if distribution == "log_uniform"
                          else tune.uniform)(low, high)
        else:
            space[key] = (tune.grid_search if config.kind == "grid" else tune.choice)(values)
    epochs = config.train.epochs
    scheduler = FIFOScheduler() if config.grace is None or config.grace >= epochs else \
        ASHAScheduler(time_attr="epoch", max_t=epochs, grace_period=config.grace,
                      reduction_factor=config.reduction)
    return tune.Tuner(
        trainable, param_space=space,
        tune_config=tune.TuneConfig(
            metric=METRIC, mode="min", scheduler=scheduler,
            num_samples=config.trials if config.kind == "random" else 1,
            search_alg=BasicVariantGenerator(random_state=0)),
        run_config=tune.RunConfig(name=EXPERIMENT, storage_path=str(storage), verbose=0,
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                                  callbacks=[TrialEnds(count_trials(config), storage)]))


class TrialEnds(Callback):
    """A line on stderr as each trial ends (Tune's own output is off), and the end noted for
    the leaderboard (record_end). Tune keeps it with the experiment and brings it back on
    resuming, so it lives here, under a name that stays."""

    def __init__(self, total: int, storage: Path):
        self.total, self.storage, self.ended = total, Path(storage), 0

    def _line(self, trial, what, how):
        record_end(self.storage, trial.trial_id, how)
        self.ended += 1
        print(f"trial {trial.trial_id} {what} ({self.ended}/{self.total} ended)",
              file=sys.stderr, flush=True)

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        esr = result.get(METRIC)
        how = "finished" if result.get("finished") else "stopped early"
        self._line(trial, f"{how} at epoch {result.get('epoch', 0)}" + (
            f": best validation ESR {100 * esr:.3f} %" if esr is not None else ""), how)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line(trial, "failed", "failed")


def run_sweep(config: SweepConfig, out: str | os.PathLike, address: str | None = None,
              cpus: int | None = None, log=sys.stderr):
    """Run (or resume) the sweep into `out`; returns the leaderboard's entries."""
    import logging

    from klon.core.cluster import connected
    out = Path(out).resolve()
    resume = check_out(config, out)
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        atomic_write(out / "sweep.toml", config.text)
    # Tune's tables, hints and warnings off: TrialEnds's lines and the leaderboard instead
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    for name in ("ray", "ray.tune", "ray.train"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with connected(address, cpus) as ray:
        resources = ray.cluster_resources()  # checked before anything is rendered
        for kind, wanted in (("CPU", config.cpus_per_trial), ("GPU", config.gpus_per_trial)):
            if wanted > resources.get(kind, 0):
                raise KlonError(f"[resources] {kind.lower()}s_per_trial = {wanted:g}, but the "
                                f"Ray has {resources.get(kind, 0):g} {kind}s")
        folders = data_folders(config, out, log)
        plan = {"folders": folders, "fixed": config.fixed, "train": config.train,
                "cpus_per_trial": config.cpus_per_trial, "gpus_per_trial": config.gpus_per_trial}
        have = resources["CPU"]
        verb = "resuming" if resume else "running"
        print(f"{verb} {count_trials(config)} trials, {int(have // config.cpus_per_trial)} at a "
              f"time, results in {out}", file=log, flush=True)
        results = _tuner(config, plan, out / "tune", resume).fit()
    rows = entries(results, config)
    leaderboard.check_gains(rows, folders, log)
    leaderboard.measure_costs(rows, config.cortex_m7, log)
    leaderboard.write(rows, out, log)
    return rows
