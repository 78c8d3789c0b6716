"""`klon bench`: compute time per second of audio, by engine and block size.

The seed's benchmark, redone for klon: seeded white noise in [-1, 1) (stereo, 44.1 kHz, knobs at
their defaults) streamed block by block through each engine's `process(block, out=...)`, timed
around the streaming loop only (each engine is built, compiled and warmed up first; each block
is a C-ordered buffer of its own, as a host passes them). Results:
a table, CSV, Markdown, JSON and a plot, next to the seed's C++ numbers.
"""
import contextlib
import csv
import io
import json
import os
import platform
import sys
import time
from importlib import metadata

import numpy as np

from klon.core.errors import KlonError
from klon.core.figures import pyplot, save_figure
from klon.core.files import atomic_write

ENGINES = ("circuit", "neural", "gru", "torch-gru")
# the plugins (klon export plugin) in a VST3 host, pedalboard: asked for by name
PLUGIN_ENGINES = ("vst3-circuit", "vst3-neural")
BLOCKS = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
RATIOS = (("neural", "circuit"), ("torch-gru", "gru"))
# the seed's columns the plugins are held to (the goal: 5x faster at every block size)
SEED_COLUMN = {"vst3-circuit": 0, "vst3-neural": 1}

# The seed's table (the talk's "Results: Performance"): the original C++ plugin, whole pedal,
# stereo 44.1 kHz, 100 s of white noise, on a 2017 laptop; block size: (circuit, neural) s/s.
SEED_SECONDS = {
    8: (0.0723437, 0.0528792), 16: (0.0703079, 0.0510437), 32: (0.0652856, 0.0511147),
    64: (0.0662835, 0.0502434), 128: (0.0666593, 0.0495194), 256: (0.0696844, 0.0480298),
    512: (0.0669037, 0.0477946), 1024: (0.0608160, 0.0488841), 2048: (0.0695175, 0.0488309),
    4096: (0.0623839, 0.0472191),
}


class Runner:
    """One engine ready to stream: `process(block, out)`, `reset()`, and `context()` to hold
    around the timing (torch's inference mode and thread count). A plugin's runner has
    `render(audio, block)` instead: its host streams the blocks itself, in compiled code."""

    def __init__(self, process, reset, context=contextlib.nullcontext, render=None):
        self.process, self.reset, self.context = process, reset, context
        self.render = render


def check_settings(seconds: float, blocks: list[int], engines: list[str], sample_rate: float,
                   channels: int, repeats: int) -> None:
    """Refuse what cannot be measured, before anything is built."""
    unknown = [e for e in engines if e not in ENGINES + PLUGIN_ENGINES]
    if unknown:
        raise KlonError(f"unknown engine(s) {', '.join(unknown)}: choose from "
                        f"{', '.join(ENGINES + PLUGIN_ENGINES)}")
    if len(set(engines)) != len(engines) or len(set(blocks)) != len(blocks):
        raise KlonError("--engines and --blocks must not repeat an entry")
    bad = [b for b in blocks if b < 1]
    if bad:
        raise KlonError(f"--blocks: block sizes must be positive, got {bad[0]}")
    if channels < 1:
        raise KlonError(f"--channels must be at least 1, got {channels}")
    if repeats < 1:
        raise KlonError(f"--repeats must be at least 1, got {repeats}")
    if not seconds > 0 or not np.isfinite(seconds):
        raise KlonError(f"--seconds must be a positive number, got {seconds:g}")
    if sample_rate <= 0:
        raise KlonError(f"--sample-rate must be positive, got {sample_rate:g}")
    if int(seconds * sample_rate) < max(blocks):
        raise KlonError(f"{seconds:g} s of audio is shorter than one block of {max(blocks)} "
                        f"samples: raise --seconds")


def resolve_models(models: str | os.PathLike | None, sample_rate: float) -> str | os.PathLike:
    """The model set asked for (checked now, so a bad name fails before any timing), else the
    neural engine's default set for the rate."""
    from klon.neural.bank import model_set_files
    from klon.neural.gain_stage import default_models
    models = default_models(sample_rate) if models is None else models
    model_set_files(models)
    return models


def gru_model_file(models: str | os.PathLike) -> tuple:
    """The set's model for Gain 0.5 (the knobs' default), else its middle one."""
    from klon.neural.bank import model_set_files
    from klon.neural.model_file import read_model
    files = model_set_files(models)
    specs = [read_model(f) for f in files]
    for file, spec in zip(files, specs, strict=True):
        if spec.gain == 0.5:
            return file, spec
    return files[len(files) // 2], specs[len(files) // 2]


def plugin_runner(engine: str, sample_rate: float, channels: int,
                  plugins: str | os.PathLike) -> tuple[Runner, str]:
    """A klon VST3 plugin in pedalboard, its engine chosen, rendering whole signals at a block
    size (pedalboard's buffer_size: the host calls the plugin's process once per block, as the
    seed's benchmark did)."""
    try:
        import pedalboard
    except ImportError:
        raise KlonError("the vst3 engines need pedalboard: scripts/setup --plugins") from None
    if channels > 2:
        raise KlonError("the plugins take 1 or 2 channels: --channels 1 or 2")
    layout = "klon_mono" if channels == 1 else "klon_stereo"
    path = os.path.join(plugins, f"{layout}.vst3")
    if not os.path.isdir(path):
        raise KlonError(f"no {layout}.vst3 in {plugins}: klon export plugin {plugins}")
    plugin = pedalboard.load_plugin(path)
    plugin.engine = engine.removeprefix("vst3-")

    def render(audio, block):
        plugin(audio, sample_rate, buffer_size=block, reset=True)

    return (Runner(None, plugin.reset, render=render),
            f"{layout}.vst3 in pedalboard {pedalboard.__version__} ({path})")


def make_runner(engine: str, sample_rate: float, channels: int,
                models: str | os.PathLike | None) -> tuple[Runner, str]:
    """The engine ready to stream `channels` x block float32 blocks, and a note (what runs)."""
    if engine in ("circuit", "neural"):
        from klon.pedal import Centaur
        pedal = Centaur(sample_rate, engine=engine,
                        **({"models": models} if engine == "neural" else {}))
        note = "the whole pedal" + (f", model set '{models}'" if engine == "neural" else "")
        return Runner(pedal.process, lambda: pedal.reset(channels)), note
    if engine == "gru":
        file, spec = gru_model_file(models)
        runner, note = model_runner(spec, channels)
        return runner, f"{note}, {os.path.basename(file)} of '{models}'"
    return _torch_runner(channels)


def model_runner(spec, channels: int) -> tuple[Runner, str]:
    """One model (a ModelSpec) alone in klon's engine, its knob inputs held at 0.5, and a note."""
    from klon.neural import RecurrentModel
    model = RecurrentModel(spec)
    note = f"{spec.kind.upper()}-{spec.hidden_size} + Dense(1) alone"
    if spec.inputs == 1:
        return Runner(model.process, lambda: model.reset(channels)), note
    return Runner(_with_knobs(model.process, spec.inputs), lambda: model.reset(channels)), \
        note + ", Gain input 0.5"


def _with_knobs(process, inputs):
    """process(block, out) for a model with knob inputs: the audio, then every knob at 0.5."""
    frames = {}

    def with_knobs(block, out):
        x = frames.get(block.shape)
        if x is None:
            x = frames[block.shape] = np.full((block.shape[0], inputs, block.shape[1]), 0.5,
                                              dtype=np.float32)
        x[:, 0] = block
        return process(x, out)

    return with_knobs


def _torch_runner(channels, hidden=8):
    """torch.nn.GRU(1, 8) + Linear(8, 1), random weights (seed 0), each channel a batch entry
    with its state carried from block to block."""
    import torch
    torch.manual_seed(0)
    gru, dense = torch.nn.GRU(1, hidden, batch_first=True), torch.nn.Linear(hidden, 1)
    state = {"h": torch.zeros(1, channels, hidden)}

    def process(block, out):
        y, state["h"] = gru(torch.from_numpy(block)[..., None], state["h"])
        torch.from_numpy(out).copy_(dense(y)[..., 0])
        return out

    def reset():
        state["h"] = torch.zeros(1, channels, hidden)

    @contextlib.contextmanager
    def context():
        # one thread: a GRU-8 step has nothing to share out, and more threads only add noise
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.inference_mode():
                yield
        finally:
            torch.set_num_threads(threads)

    return Runner(process, reset, context), f"torch {torch.__version__}, one thread"


def time_runner(runner: Runner, audio: np.ndarray, block: int, repeats: int,
                clock) -> tuple[list[float], int]:
    """Seconds to stream `audio` (channels x frames) block by block, once per repeat, and the
    frames streamed (whole blocks only)."""
    n_blocks = audio.shape[1] // block
    times = []
    if runner.render is not None:
        audio = audio[:, :n_blocks * block]
        runner.render(audio[:, :block], block)  # loads and warms up, untimed
        for _ in range(repeats):
            start = clock()
            runner.render(audio, block)
            times.append(clock() - start)
        return times, n_blocks * block
    out = np.empty((audio.shape[0], block), dtype=np.float32)
    # each block in a buffer of its own, as a host hands them over (a slice of the whole signal
    # would be strided, and copied by every call)
    blocks = [audio[:, b * block:(b + 1) * block].copy() for b in range(n_blocks)]
    with runner.context():
        runner.process(blocks[0], out)  # compiles (numba) and warms up, untimed
        for _ in range(repeats):
            runner.reset()
            start = clock()
            for x in blocks:
                runner.process(x, out)
            times.append(clock() - start)
    return times, n_blocks * block


def machine_info() -> dict:
    """CPU, cores, load and the versions that decide the speed."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu

    def version(package):
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    return {"cpu": cpu, "cores": os.cpu_count(), "system": f"{platform.system()} "
            f"{platform.release()}", "python": platform.python_version(),
            "numpy": np.__version__, "numba": version("numba"), "torch": version("torch"),
            "load_average_1min": round(os.getloadavg()[0], 2)}


class Progress:
    """A progress bar on stderr (redrawn in place on a terminal, one line per step otherwise)."""

    def __init__(self, total, stream=sys.stderr, width=30):
        self.total, self.stream, self.width, self.done = total, stream, width, 0
        self.started = time.perf_counter()
        self.tty = stream.isatty()

    def step(self, label):
        self.done += 1
        filled = self.width * self.done // self.total
        bar = "#" * filled + "." * (self.width - filled)
        line = (f"[{bar}] {self.done}/{self.total} {time.perf_counter() - self.started:.0f} s "
                f"{label}")
        if self.tty:
            self.stream.write("\r\x1b[K" + line + ("\n" if self.done == self.total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def run_bench(seconds: float = 10.0, blocks=BLOCKS, engines=ENGINES, sample_rate: int = 44_100,
              channels: int = 2, repeats: int = 3, models: str | os.PathLike | None = None,
              clock: str = "wall", plugins: str | os.PathLike | None = None,
              log=sys.stderr) -> dict:
    """Measure every engine at every block size: a dict with the machine, the settings, notes
    (engines skipped, models used) and one record per engine and block size. The vst3 engines
    run the plugins in `plugins` (a `klon export plugin` folder)."""
    blocks, engines = [int(b) for b in blocks], list(engines)
    check_settings(seconds, blocks, engines, sample_rate, channels, repeats)
    if clock not in CLOCKS:
        raise KlonError(f"unknown clock {clock!r}: choose from {', '.join(CLOCKS)}")
    notes, asked = {}, models
    if models is not None and not {"neural", "gru"} & set(engines):
        raise KlonError("--models chooses the models of the neural and gru engines: add one")
    if {"neural", "gru"} & set(engines):
        models = resolve_models(models, sample_rate)
    if set(PLUGIN_ENGINES) & set(engines) and plugins is None:
        raise KlonError("the vst3 engines need the plugins: klon export plugin DIR, then "
                        "--plugins DIR")
    runners = {}
    for engine in engines:
        if engine in PLUGIN_ENGINES:  # a missing plugin is the user's to fix, as the circuit's
            runners[engine], notes[engine] = plugin_runner(engine, sample_rate, channels, plugins)
            continue
        try:
            runners[engine], notes[engine] = make_runner(engine, sample_rate, channels, models)
        except ImportError:
            if engine != "torch-gru":
                raise
            notes[engine] = "skipped: torch is not installed"
        except KlonError as error:
            if engine == "circuit":
                raise  # it runs at every rate klon supports: its refusal is the user's to fix
            notes[engine] = f"skipped: {error}"  # e.g. a rate the models were not trained at
        if engine not in runners:
            print(f"klon bench: {engine} {notes[engine]}", file=log)

    rng = np.random.default_rng(0)
    audio = rng.uniform(-1.0, 1.0, (channels, int(seconds * sample_rate))).astype(np.float32)
    info = machine_info()
    progress = Progress(len(runners) * len(blocks), log)
    records = []
    for engine, runner in runners.items():
        for block in blocks:
            times, frames = time_runner(runner, audio, block, repeats, CLOCKS[clock])
            per_second = np.array(times) / (frames / sample_rate)
            records.append({
                "engine": engine, "block_size": block, "sample_rate": sample_rate,
                "channels": channels,
                "seconds_per_second": {"median": float(np.median(per_second)),
                                       "min": float(per_second.min()),
                                       "max": float(per_second.max())},
                "ns_per_sample": float(np.median(times)) / (frames * channels) * 1e9,
            })
            median = records[-1]["seconds_per_second"]["median"]
            progress.step(f"{engine}, block {block}: {median:.4f} s/s")
    info["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    settings = {"seconds": seconds, "blocks": blocks, "engines": engines,
                "sample_rate": sample_rate, "channels": channels, "repeats": repeats,
                "models": asked, "clock": clock, "plugins": None if plugins is None
                else str(plugins)}
    return {"machine": info, "settings": settings, "notes": notes, "records": records}


def command_line(settings: dict) -> str:
    """The `klon bench` command that repeats a run."""
    parts = ["klon bench", f"--seconds {settings['seconds']:g}", f"--repeats {settings['repeats']}"]
    if settings["blocks"] != list(BLOCKS):
        parts.append("--blocks " + ",".join(map(str, settings["blocks"])))
    if settings["engines"] != list(ENGINES):
        parts.append("--engines " + ",".join(settings["engines"]))
    if settings["sample_rate"] != 44_100:
        parts.append(f"--sample-rate {settings['sample_rate']:g}")
    if settings["channels"] != 2:
        parts.append(f"--channels {settings['channels']}")
    if settings["models"] is not None:
        parts.append(f"--models {settings['models']}")
    if settings["clock"] != "wall":
        parts.append(f"--clock {settings['clock']}")
    if settings.get("plugins") is not None:
        parts.append(f"--plugins {settings['plugins']}")
    return " ".join(parts)


def _table(result):
    """Header and rows: s/s medians by block size, the ratios, and the seed's columns."""
    medians = {(r["engine"], r["block_size"]): r["seconds_per_second"]["median"]
               for r in result["records"]}
    engines = [e for e in result["settings"]["engines"] if (e, result["settings"]["blocks"][0])
               in medians]
    ratios = [(a, b) for a, b in RATIOS if a in engines and b in engines]
    against_seed = [e for e in engines if e in SEED_COLUMN]
    header = (["block"] + engines + [f"{a}/{b}" for a, b in ratios]
              + ["seed circuit", "seed neural"] + [f"seed/{e}" for e in against_seed])
    rows = []
    for block in result["settings"]["blocks"]:
        seed = SEED_SECONDS.get(block, (None, None))
        rows.append([str(block)] + [f"{medians[e, block]:.4f}" for e in engines]
                    + [f"{medians[a, block] / medians[b, block]:.3g}" for a, b in ratios]
                    + [f"{s:.4f}" if s is not None else "-" for s in seed]
                    + [f"{seed[SEED_COLUMN[e]] / medians[e, block]:.2f}x"
                       if seed[SEED_COLUMN[e]] is not None else "-" for e in against_seed])
    return header, rows


def call_overhead(result: dict) -> dict[str, float]:
    """Microseconds each block call costs beyond its samples' own work, by engine: the time per
    call at the smallest block less that block's frames at the largest block's cost per frame
    (blocks of 8 against 4096 by default: the Python dispatch and checks, the kernel's entry)."""
    blocks = result["settings"]["blocks"]
    small, large = min(blocks), max(blocks)
    if small == large:
        return {}
    medians = {(r["engine"], r["block_size"]): r["seconds_per_second"]["median"]
               for r in result["records"]}
    rate = result["settings"]["sample_rate"]
    return {e: 1e6 * (medians[e, small] - medians[e, large]) * small / rate
            for e in result["settings"]["engines"] if (e, small) in medians}


def describe(result: dict) -> list[str]:
    """What was measured, in one paragraph: the text above every table."""
    s, m = result["settings"], result["machine"]
    clock = "wall-clock" if s["clock"] == "wall" else "CPU"
    lines = [(f"Compute seconds per second of audio ({clock} time), median of {s['repeats']}: "
              f"{s['channels']} channel(s) of seeded white noise in [-1, 1) at "
              f"{s['sample_rate']:g} Hz, {s['seconds']:g} s, streamed block by block (each "
              f"in a buffer of its own), knobs at 0.5."),
             (f"Machine: {m['cpu']}, {m['cores']} cores, {m['system']}; Python {m['python']}, "
              f"numpy {m['numpy']}, numba {m['numba']}, torch {m['torch'] or 'not installed'}; "
              f"load average {m['load_average_1min']} before, {m['load_average_1min_after']} "
              f"after (the benchmark itself adds about 1).")]
    lines += [f"{engine}: {note}." for engine, note in result["notes"].items()]
    overhead = call_overhead(result)
    if overhead:
        blocks = s["blocks"]
        lines.append(f"Cost of a block call beyond its samples' (block {min(blocks)} against "
                     f"{max(blocks)}, {s['channels']} channel(s) a call): "
                     + ", ".join(f"{e} {us:.1f} us" for e, us in overhead.items()) + ".")
    lines.append("Seed: the original C++ plugin on a 2017 laptop, stereo 44.1 kHz, 100 s of "
                 "white noise.")
    return lines


def text_table(result: dict) -> str:
    """The description and the table as aligned text, for the terminal."""
    header, rows = _table(result)
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(header)]
    lines = describe(result) + [""]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True))
              for row in [header, *rows]]
    return "\n".join(lines) + "\n"


def markdown(result: dict) -> str:
    """bench.md: the command, the description, the table and the spread per run."""
    header, rows = _table(result)
    first, *rest = describe(result)
    lines = [f"`{command_line(result['settings'])}`", "", first, ""] + [f"- {r}" for r in rest]
    lines.append("")
    lines += ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    summary = "Spread (min-max of the repeats, s/s) and ns per sample per channel (median)"
    lines += ["", f"<details><summary>{summary}</summary>", "",
              "| engine | block | min | max | ns/sample |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['engine']} | {r['block_size']} | {r['seconds_per_second']['min']:.4f} | "
              f"{r['seconds_per_second']['max']:.4f} | {r['ns_per_sample']:.0f} |"
              for r in result["records"]]
    lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


CSV_COLUMNS = ("engine", "block_size", "sample_rate", "channels", "seconds_per_second_median",
               "seconds_per_second_min", "seconds_per_second_max", "ns_per_sample")


def csv_text(result: dict) -> str:
    """bench.csv: one row per engine and block size."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in result["records"]:
        s = r["seconds_per_second"]
        writer.writerow([r["engine"], r["block_size"], r["sample_rate"], r["channels"],
                         s["median"], s["min"], s["max"], r["ns_per_sample"]])
    return buffer.getvalue()


def plot(result: dict, path: str | os.PathLike) -> None:
    """Block size against s/s per engine (median, min-max band), log-log, with the seed's two
    columns dashed."""
    from matplotlib.ticker import NullLocator

    fig, ax = pyplot().subplots(figsize=(10, 5))
    for engine in result["settings"]["engines"]:
        records = [r for r in result["records"] if r["engine"] == engine]
        if not records:
            continue
        blocks = [r["block_size"] for r in records]
        s = [r["seconds_per_second"] for r in records]
        line, = ax.plot(blocks, [v["median"] for v in s], "o-", label=f"klon {engine}")
        ax.fill_between(blocks, [v["min"] for v in s], [v["max"] for v in s],
                        color=line.get_color(), alpha=0.2)
    seed_blocks = sorted(SEED_SECONDS)
    for column, (label, style) in enumerate((("seed C++ circuit", "s--"),
                                             ("seed C++ neural", "^--"))):
        ax.plot(seed_blocks, [SEED_SECONDS[b][column] for b in seed_blocks], style, color="0.5",
                label=f"{label} (2017 laptop)", ms=4)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ticks = sorted(set(result["settings"]["blocks"]) | set(SEED_SECONDS))
    ax.set_xticks(ticks, [str(b) for b in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    s, m = result["settings"], result["machine"]
    ax.set(xlabel="block size (samples)", ylabel="compute seconds per second of audio",
           title=f"klon bench: {s['channels']} ch, {s['sample_rate'] / 1000:g} kHz, "
                 f"{m['cores']} cores, load {m['load_average_1min']}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    save_figure(fig, path)


def output_folder(out_dir: str | os.PathLike) -> str | os.PathLike:
    """Make `out_dir` if missing; a KlonError if it cannot be written."""
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as error:
        raise KlonError(f"cannot make the output folder '{out_dir}': {error.strerror}") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise KlonError(f"cannot write to the output folder '{out_dir}'")
    return out_dir


def write_outputs(result: dict, out_dir: str | os.PathLike) -> list[str]:
    """bench.csv, bench.md, bench.json and bench.png in `out_dir` (made if missing)."""
    output_folder(out_dir)
    paths = [os.path.join(out_dir, f"bench.{ext}") for ext in ("csv", "md", "json", "png")]
    atomic_write(paths[0], csv_text(result))
    atomic_write(paths[1], markdown(result))
    atomic_write(paths[2], json.dumps(result, indent=1) + "\n")
    plot(result, paths[3])
    return paths
