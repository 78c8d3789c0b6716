"""A sweep's TOML file, read and checked before anything runs (`klon sweep`; the format is in
docs/sweeps.md).

    [data.cond]                 # one table per dataset: a training folder ...
    folder = "my-data"          # (relative to the TOML file)
    [data.renders]              # ... or circuit renders made for the sweep (`klon dataset`)
    inputs = ["../shared/data/klon-ltspice/DataIn"]   # files, folders or glob patterns
    gain = "moving"
    takes = 2

    [search]                    # grid: every combination; random: `trials` draws
    kind = "grid"
    cell = ["gru", "lstm"]      # a list: the values (grid) or the choices (random)
    hidden = [4, 8, 16]
    knobs = [["gain"], []]      # the knob inputs (none: an audio-only baseline)
    learning_rate = [5e-3]      # random search also takes {log_uniform = [1e-3, 1e-2]}
    seed = [0]
    data = ["cond"]             # which [data.*] tables (default: every one)

    [train]                     # the trainer's settings held for every trial (TrainConfig)
    epochs = 40

    [stopping]                  # ASHA: poor trials stop at rungs grace, grace*reduction, ...
    grace = 5
    reduction = 3

    [resources]
    cpus_per_trial = 1          # and gpus_per_trial (more than 0: trials train on CUDA)

    [cost]
    cortex_m7 = "auto"          # count instructions on the emulated Cortex-M7 where it is here
"""
import glob
import math
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from klon.core.errors import KlonError
from klon.neural.architectures import kinds
from klon.train.trainer import TrainConfig

# what a trial's own settings are: searched when [search] lists them, else TrainConfig's default
SEARCHED = ("cell", "hidden", "knobs", "learning_rate", "seed", "data")
# TrainConfig fields a sweep sets itself or that make no sense held for every trial
NOT_HELD = {"cell", "hidden", "learning_rate", "seed", "device", "init"}
# `klon dataset` settings a [data.*] render table takes, with their types
RENDER_KEYS = {"inputs": list, "gain": (str, float, int), "takes": int, "synth": (float, int),
               "tones": (float, int), "seed": int, "sample_rate": int, "diode": str,
               "input_gain_db": (float, int), "oversampling": int, "band_limited": bool,
               "ends": (float, int)}
DISTRIBUTIONS = ("uniform", "log_uniform")


@dataclass
class DataSource:
    """A [data.NAME] table: a folder to train on (`gain`: which gain of a folder holding several),
    or a circuit render (`render`: `klon dataset`'s settings) made into OUT/data/NAME."""
    name: str
    folder: Path | None = None
    gain: float | None = None
    render: dict | None = None


@dataclass
class SweepConfig:
    path: Path
    text: str  # the file as read (a resumed sweep must be the same sweep)
    data: dict[str, DataSource]
    kind: str  # grid | random
    trials: int  # random: how many drawn (grid: every combination once)
    space: dict[str, list | dict]  # searched setting -> values, or {distribution: [lo, hi]}
    train: TrainConfig
    grace: int | None  # None: no early stopping
    reduction: int
    cpus_per_trial: float
    gpus_per_trial: float  # more than 0: the trials train on CUDA
    cortex_m7: str | bool  # "auto", True, False
    fixed: dict = field(default_factory=dict)  # unsearched trial settings (SEARCHED defaults)


def _table(document, name, allowed):
    table = document.get(name, {})
    if not isinstance(table, dict):
        raise KlonError(f"[{name}] must be a table")
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise KlonError(f"[{name}]: unknown setting {unknown[0]!r} (known: "
                        f"{', '.join(sorted(allowed))})")
    return table


def _data_sources(document, base):
    tables = document.get("data")
    if not isinstance(tables, dict) or not tables or not all(
            isinstance(v, dict) for v in tables.values()):
        raise KlonError("no data: add a [data.NAME] table with folder = \"...\" (a training "
                        "folder) or inputs = [...] (audio for circuit renders)")
    sources = {}
    for name, table in tables.items():
        where = f"[data.{name}]"
        if ("folder" in table) == ("inputs" in table or "synth" in table):
            raise KlonError(f"{where}: give either folder = \"...\" or a render (inputs and/or "
                            f"synth)")
        if "folder" in table:
            extra = sorted(set(table) - {"folder", "gain"})
            if extra:
                raise KlonError(f"{where}: {extra[0]!r} is a render setting; a folder table "
                                f"takes folder and gain")
            folder = (base / table["folder"]).resolve()
            if not folder.is_dir():
                raise KlonError(f"{where}: no training folder at '{folder}'")
            gain = table.get("gain")
            sources[name] = DataSource(name, folder=folder,
                                       gain=None if gain is None else float(gain))
            continue
        render = {}
        for key, value in table.items():
            if key not in RENDER_KEYS:
                raise KlonError(f"{where}: unknown setting {key!r} (known: "
                                f"{', '.join(RENDER_KEYS)})")
            if not isinstance(value, RENDER_KEYS[key]) or isinstance(value, bool) != (
                    RENDER_KEYS[key] is bool):
                raise KlonError(f"{where}: {key} = {value!r} has the wrong type")
            render[key] = value
        render["inputs"] = [path for pattern in render.get("inputs", [])
                            for path in _expand(base, pattern, where)]
        sources[name] = DataSource(name, render=render)
    return sources


def _expand(base, pattern, where):
    """A render input: a file or folder, or a glob pattern (sorted matches), from `base`."""
    path = os.path.join(base, pattern)
    if not glob.has_magic(pattern):
        return [str(Path(path).resolve())]
    matches = sorted(glob.glob(path))
    if not matches:
        raise KlonError(f"{where}: no file matches {pattern!r}")
    return [str(Path(m).resolve()) for m in matches]


def _space(search, sources, kind):
    space = {}
    for key in SEARCHED:
        if key not in search:
            continue
        values = search[key]
        if isinstance(values, dict):
            if kind != "random" or len(values) != 1 or next(iter(values)) not in DISTRIBUTIONS:
                raise KlonError(f"[search] {key}: a range ({' or '.join(DISTRIBUTIONS)} = "
                                f"[low, high]) needs kind = \"random\"; else give a list")
            (distribution, bounds), = values.items()
            if (key != "learning_rate" or len(bounds) != 2 or not 0 < bounds[0] < bounds[1]):
                raise KlonError(f"[search] {key}: {distribution} = [low, high] with "
                                f"0 < low < high (ranges are for learning_rate)")
            space[key] = {distribution: [float(b) for b in bounds]}
            continue
        if not isinstance(values, list) or not values:
            raise KlonError(f"[search] {key} must be a non-empty list of values")
        space[key] = values
    for cell in space.get("cell", []):
        if cell not in kinds():
            raise KlonError(f"[search] cell {cell!r}: choose from {', '.join(kinds())}")
    for hidden in space.get("hidden", []):
        if not isinstance(hidden, int) or isinstance(hidden, bool) or hidden < 1:
            raise KlonError(f"[search] hidden {hidden!r}: a whole number of units, at least 1")
    for knobs in space.get("knobs", []):
        if not isinstance(knobs, list) or not all(isinstance(k, str) for k in knobs):
            raise KlonError(f"[search] knobs: each choice is a list of knob names, e.g. "
                            f"[[\"gain\"], []], got {knobs!r}")
    rates = space.get("learning_rate")
    for rate in rates if isinstance(rates, list) else []:  # a range was checked above
        if not isinstance(rate, int | float) or not 0 < rate < 1:
            raise KlonError(f"[search] learning_rate {rate!r}: between 0 and 1")
    for seed in space.get("seed", []):
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise KlonError(f"[search] seed {seed!r}: a whole number, 0 or more")
    for name in space.get("data", []):
        if name not in sources:
            raise KlonError(f"[search] data {name!r}: no [data.{name}] table")
    return space


def _train_config(table):
    known = {f.name: f for f in fields(TrainConfig) if f.name not in NOT_HELD}
    unknown = sorted(set(table) - set(known))
    if unknown:
        searched = " (a searched setting: list it in [search])" if unknown[0] in SEARCHED \
            or unknown[0] in NOT_HELD else ""
        raise KlonError(f"[train]: unknown setting {unknown[0]!r}{searched}")
    try:
        config = TrainConfig(**table)
    except TypeError as error:
        raise KlonError(f"[train]: {error}") from None
    if not isinstance(config.epochs, int) or config.epochs < 1:
        raise KlonError(f"[train] epochs = {config.epochs!r}: a whole number, at least 1")
    return config


def read(path) -> SweepConfig:
    """The sweep in the TOML file at `path`, checked."""
    path = Path(path)
    try:
        text = path.read_text()
        document = tomllib.loads(text)
    except FileNotFoundError:
        raise KlonError(f"no sweep file at '{path}'") from None
    except (OSError, UnicodeDecodeError) as error:
        raise KlonError(f"cannot read '{path}': {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise KlonError(f"'{path}' is not valid TOML: {error}") from None
    unknown = sorted(set(document) - {"data", "search", "train", "stopping", "resources",
                                      "cost"})
    if unknown:
        raise KlonError(f"'{path}': unknown table [{unknown[0]}]")
    sources = _data_sources(document, path.parent)
    search = _table(document, "search", {"kind", "trials", *SEARCHED})
    kind = search.get("kind", "grid")
    if kind not in ("grid", "random"):
        raise KlonError(f"[search] kind = {kind!r}: choose grid or random")
    if kind == "grid" and "trials" in search:
        raise KlonError("[search] trials is for kind = \"random\": a grid runs every "
                        "combination once (list seeds to repeat it)")
    trials = search.get("trials", 1 if kind == "grid" else 8)
    if not isinstance(trials, int) or trials < 1:
        raise KlonError(f"[search] trials = {trials!r}: a whole number, at least 1")
    space = _space(search, sources, kind)
    train = _train_config(document.get("train", {}))
    stopping = _table(document, "stopping", {"grace", "reduction", "off"})
    off = stopping.get("off", False)
    grace, reduction = stopping.get("grace", max(1, train.epochs // 8)), \
        stopping.get("reduction", 3)
    if not off and (not isinstance(grace, int) or grace < 1 or not isinstance(reduction, int)
                    or reduction < 2):
        raise KlonError("[stopping]: grace (epochs) at least 1 and reduction at least 2")
    resources = _table(document, "resources", {"cpus_per_trial", "gpus_per_trial"})
    cpus = resources.get("cpus_per_trial", 1)
    if not isinstance(cpus, int | float) or isinstance(cpus, bool) or cpus <= 0:
        raise KlonError(f"[resources] cpus_per_trial = {cpus!r}: more than 0")
    gpus = resources.get("gpus_per_trial", 0)
    if not isinstance(gpus, int | float) or isinstance(gpus, bool) or gpus < 0:
        raise KlonError(f"[resources] gpus_per_trial = {gpus!r}: 0 or more")
    cost = _table(document, "cost", {"cortex_m7"})
    cortex_m7 = cost.get("cortex_m7", "auto")
    if cortex_m7 not in ("auto", True, False):
        raise KlonError(f"[cost] cortex_m7 = {cortex_m7!r}: true, false or \"auto\"")
    fixed = {"cell": train_default("cell"), "hidden": train_default("hidden"),
             "knobs": None, "learning_rate": train_default("learning_rate"),
             "seed": train_default("seed"), "data": next(iter(sources))}
    return SweepConfig(path, text, sources, kind, trials, space, train,
                       None if off else grace, reduction, float(cpus), float(gpus), cortex_m7,
                       {k: v for k, v in fixed.items() if k not in space})


def trial_settings(params: dict, fixed: dict) -> dict:
    """A trial's own settings: the searched ones (from Tune), the rest the sweep's fixed ones."""
    return {**fixed, **params}


def train_default(name):
    return next(f.default for f in fields(TrainConfig) if f.name == name)


def count_trials(config: SweepConfig) -> int:
    """How many trials the sweep runs."""
    if config.kind == "random":
        return config.trials
    return math.prod(len(v) for v in config.space.values())
