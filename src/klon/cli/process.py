"""`klon process`: audio files through the pedal (or its gain stage alone), streamed from disk
to disk block by block; several files (or a folder) with --out-dir, in parallel."""
import argparse
import os
import sys
import time
from pathlib import Path

from klon.core.errors import KlonError

SHOW_PROGRESS_SECONDS = 5.0  # files at least this long get a progress bar (on a terminal)
USAGE = ("klon process [options] INPUT OUTPUT\n"
         "       klon process [options] INPUT|FOLDER ... --out-dir FOLDER")


def _knob(text: str) -> float:
    """A knob value as a number; the range is the pedal's to check (its message names the
    knob), so argparse only refuses what is not a number."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _decibels(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of dB: {text!r}") from None
    if not -60.0 <= value <= 60.0:
        raise argparse.ArgumentTypeError(f"{value:g} dB is outside -60..60 dB")
    return value


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def add_parsers(commands) -> None:
    p = commands.add_parser(
        "process", help="run audio files through the pedal", usage=USAGE,
        description="Run an audio file (or several, with --out-dir) through the pedal. Files "
                    "are streamed block by block, so memory stays flat whatever their length; "
                    "the output appears whole or not at all.")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="INPUT OUTPUT (any file libsndfile reads; the output's format by its "
                        "extension), or with --out-dir any number of input files and folders")
    p.add_argument("--out-dir", default=None, metavar="FOLDER",
                   help="process every PATH (a folder: its audio files) into FOLDER, each output "
                        "named as its input; made if missing")
    p.add_argument("--jobs", type=_jobs, default=None, metavar="N",
                   help=f"files processed at once with --out-dir (default: the cores, {cores()})")
    p.add_argument("--gain", type=_knob, default=0.5, help="Gain knob, 0..1")
    p.add_argument("--treble", type=_knob, default=0.5, help="Treble knob, 0..1")
    p.add_argument("--level", type=_knob, default=0.5, help="Level knob, 0..1")
    p.add_argument("--input-gain-db", type=_decibels, default=0.0, metavar="DB",
                   help="gain before the pedal, in dB (at 0 the file's samples are volts)")
    p.add_argument("--output-gain-db", type=_decibels, default=0.0, metavar="DB",
                   help="gain after the pedal, in dB")
    p.add_argument("--subtype", default=None, type=str.upper, metavar="NAME",
                   help="the output's sample format: FLOAT, PCM_24, PCM_16, ... (default: FLOAT "
                        "where the format holds it, so volts beyond +-1 survive, else PCM_24, "
                        "which clips at +-1 V with a warning)")
    p.add_argument("--engine", default="circuit", choices=["circuit", "neural"],
                   help="circuit: the circuit model; neural: a trained model in place of the "
                        "gain stage")
    p.add_argument("--stage", default="full", choices=["full", "gain"],
                   help="full: the whole pedal; gain: the gain stage alone (volts in, volts out)")
    p.add_argument("--models", default=None, metavar="NAME|DIR",
                   help="neural engine: a shipped model set or a folder of model files "
                        "(default: 'circuit', 'circuit-48k' at 48 kHz; 'circuit-cond' is one "
                        "Gain-conditioned model)")
    p.add_argument("--model", default=None, metavar="FILE.json",
                   help="neural engine: one model file used at every Gain, instead of a set")
    p.add_argument("--diode", default="1n34a", choices=["1n34a", "mbrb2545ct"])
    p.add_argument("--oversampling", type=int, choices=[1, 2, 4], default=None,
                   help="oversampling of the gain stage (default: 2, or 4 below 44.1 kHz)")


def make_processor(args: argparse.Namespace, sample_rate: float):
    """The pedal (or its gain stage) the options describe, at `sample_rate`."""
    from klon.pedal.centaur import Centaur, make_gain_stage

    if args.stage == "gain":
        return make_gain_stage(args.engine, sample_rate, args.gain, diode=args.diode,
                               oversampling=args.oversampling, models=args.models,
                               model=args.model)
    return Centaur(sample_rate, args.gain, args.treble, args.level, engine=args.engine,
                   diode=args.diode, oversampling=args.oversampling, models=args.models,
                   model=args.model)


def compile_key(args) -> tuple:
    """What the compiled kernels depend on, besides klon's sources: the engine and models."""
    return (args.engine, args.stage, str(args.models), str(args.model))


def process_file(args, source, target, progress=None, starting=None):
    """One file through the pedal, streamed; every check on the input and on the output path
    is made before any processing. `starting`, a SlowStartNotice, brackets building the pedal
    and its first block. Returns the StreamReport."""
    from klon.core import audio

    with audio.open_audio(source) as reader:
        subtype = args.subtype or audio.best_subtype(target)
        writer = audio.AudioWriter(target, reader.sample_rate, reader.channels, subtype,
                                   protect=source)
        if starting is None:
            return _run(args, reader, writer, progress, None)
        with starting:
            return _run(args, reader, writer, progress, starting.done)


def _run(args, reader, writer, progress, first_block):
    from klon.core.streaming import stream

    processor = make_processor(args, reader.sample_rate)
    with writer:
        return stream(processor, reader, writer, args.input_gain_db, args.output_gain_db,
                      progress=progress, first_block=first_block)


def _dbfs(volts: float) -> str:
    from klon.core.streaming import decibels

    level = decibels(volts)
    return "-inf dBFS" if level == -float("inf") else f"{level:+.1f} dBFS"


def describe(target, report) -> list[str]:
    """The line saying what was written (with the peaks), then any warnings."""
    from klon.core.streaming import decibels

    lines = [f"wrote {target} ({report.frames / report.sample_rate:.2f} s, {report.channels} "
             f"channel(s), {report.sample_rate} Hz, {report.subtype}; peak in "
             f"{_dbfs(report.input_peak)} ({report.input_peak:.3g} V), out "
             f"{_dbfs(report.output_peak)} ({report.output_peak:.3g} V))"]
    above = decibels(report.output_peak) - decibels(report.input_peak) \
        if report.input_peak > 0 else float("inf")
    if report.clipped:
        share = 100.0 * report.clipped / (report.frames * report.channels)
        lines.append(f"klon: warning: {report.clipped} samples ({share:.2g}%) CLIPPED at 0 dBFS "
                     f"in '{target}': {report.subtype} holds +-1 V and the output peaks at "
                     f"{_dbfs(report.output_peak)}; write a float file (--subtype FLOAT, .wav) "
                     f"or lower --level or --output-gain-db")
    elif report.output_peak > 1.0 and above > 0.0:
        lines.append(f"klon: warning: '{target}' peaks at {_dbfs(report.output_peak)}, "
                     f"{above:.1f} dB above the input: the float file keeps it, but a player or "
                     f"a DAW will clip it above 0 dBFS; lower --level or --output-gain-db")
    return lines


def _check_options(args) -> None:
    from klon.core.processor import check_knob

    for name in ("gain", "treble", "level"):
        check_knob(name, getattr(args, name))
    if args.engine == "circuit" and (args.models or args.model):
        raise KlonError("--models and --model choose the neural engine's models: add "
                        "--engine neural")


def process(args: argparse.Namespace) -> None:
    from klon.core.files import TERMINATED

    _check_options(args)
    try:
        if args.out_dir is None:
            if len(args.paths) != 2:
                raise KlonError(f"give INPUT OUTPUT, or the inputs and --out-dir FOLDER (got "
                                f"{len(args.paths)} path(s) and no --out-dir)")
            process_one(args, *args.paths)
        else:
            process_batch(args, _plan(args.paths, args.out_dir))
    except KeyboardInterrupt:
        _leave(130, "klon: interrupted")
    except SystemExit as stop:  # SIGTERM, turned into an exit by the file writer
        if stop.code == TERMINATED:
            _leave(TERMINATED, "klon: terminated")
        raise


def _leave(status: int, message: str) -> None:
    """Exit at once once stopped: the temporaries are gone by now, and the interpreter's own
    teardown (numba loaded) takes a second or two that a user pressing Ctrl-C should not
    wait for."""
    print(message, file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(status)


def process_one(args, source, target) -> None:
    from klon.core import audio
    from klon.core.progress import ProgressBar, SlowStartNotice

    with audio.open_audio(source) as reader:  # the input's checks first, and its length
        frames, rate = reader.frames, reader.sample_rate
    bar = ProgressBar(frames, Path(source).name, rate,
                      enabled=frames >= SHOW_PROGRESS_SECONDS * rate)
    try:
        report = process_file(args, source, target, progress=bar.update,
                              starting=SlowStartNotice(compile_key(args)))
    finally:
        bar.clear()
    for line in describe(target, report):
        print(line, file=sys.stderr)


def _plan(paths, out_dir) -> list[tuple[str, str]]:
    """(input, output) pairs: each path, a folder's audio files, into `out_dir` (made here,
    its parent must exist); two inputs of one name are refused before anything runs."""
    from klon.core import audio

    inputs = []
    for path in paths:
        inputs.extend(map(str, audio.audio_files(path)) if os.path.isdir(path) else [path])
    seen = {}
    for source in inputs:
        name = Path(source).name
        if name in seen:
            raise KlonError(f"two inputs named '{name}' ('{seen[name]}' and '{source}') would "
                            f"write the same file in '{out_dir}'")
        seen[name] = source
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise KlonError(f"--out-dir '{out_dir}' is not a folder")
    if not folder.exists():
        if not folder.absolute().parent.is_dir():
            raise KlonError(f"--out-dir '{out_dir}': folder '{folder.absolute().parent}' does "
                            f"not exist")
        try:
            folder.mkdir()
        except OSError as error:
            raise KlonError(f"cannot make --out-dir '{out_dir}': "
                            f"{(error.strerror or str(error)).lower()}") from None
    return [(source, str(folder / Path(source).name)) for source in inputs]


class _Batch:
    """The parent's side of a batch: one progress bar over every file's frames, a line per
    file as it ends, the count of failures."""

    def __init__(self, args, items, frames, rates):
        from klon.core.progress import ProgressBar

        self.args, self.items, self.frames = args, items, frames
        self.done = dict.fromkeys(range(len(items)), 0)
        self.failed = 0
        self.seconds_of_audio = sum(f / r for f, r in zip(frames, rates, strict=True) if r)
        total = sum(frames)
        self.bar = ProgressBar(total, f"{len(items)} files", None,
                               enabled=self.seconds_of_audio >= SHOW_PROGRESS_SECONDS)

    def event(self, event) -> None:
        kind, index, value = event
        if kind == "progress":
            self.done[index] = value
        elif kind == "done":
            self.done[index] = self.frames[index]
            for line in describe(self.items[index][1], value):
                self.bar.say(line)
        elif kind == "failed":
            self.done[index] = self.frames[index]
            self.failed += 1
            self.bar.say(f"klon: error: {value}")
        note = f"{self.failed} failed" if self.failed else None
        self.bar.update(sum(self.done.values()), note)

    def task(self, index, report):
        source, target = self.items[index]
        return process_file(self.args, source, target, progress=report)


def process_batch(args, items) -> None:
    import numpy as np

    from klon.core import audio
    from klon.core.files import remove_stale_temporaries
    from klon.core.progress import SlowStartNotice
    from klon.core.workers import can_fork, run_jobs

    start = time.monotonic()
    frames, rates, runnable = [], [], []
    early = []  # inputs that fail their header checks: reported, not sent to a worker
    for index, (source, _) in enumerate(items):
        try:
            with audio.open_audio(source) as reader:
                frames.append(reader.frames)
                rates.append(reader.sample_rate)
                runnable.append(index)
        except KlonError as error:
            frames.append(0)
            rates.append(0)
            early.append((index, str(error)))
    batch = _Batch(args, items, frames, rates)
    for index, message in early:
        batch.event(("failed", index, message))
    jobs = min(args.jobs or cores(), len(runnable)) if can_fork() else 1
    if runnable:
        # the kernels compiled (or loaded) once here, before the workers fork and inherit them
        starting = SlowStartNotice(compile_key(args)).start()
        try:
            warm = make_processor(args, rates[runnable[0]])
            warm.process(np.zeros((1, 64), dtype=np.float32))
            starting.done()
        except KlonError:
            pass  # that file's own run reports it
        finally:
            starting.stop()
    try:
        if jobs <= 1:
            for index in runnable:
                try:
                    report = batch.task(index, lambda done, i=index: batch.event(
                        ("progress", i, done)))
                    batch.event(("done", index, report))
                except KlonError as error:
                    batch.event(("failed", index, str(error)))
        else:
            def cleanup():
                for _, target in items:
                    remove_stale_temporaries(target)

            run_jobs(lambda position, report: batch.task(runnable[position], report),
                     len(runnable), jobs, lambda event: batch.event(
                         (event[0], runnable[event[1]], event[2])), cleanup=cleanup)
    finally:
        batch.bar.clear()
    ok = len(items) - batch.failed
    print(f"processed {ok} of {len(items)} file(s) ({batch.seconds_of_audio:.1f} s of audio) in "
          f"{time.monotonic() - start:.1f} s with {max(jobs, 1)} worker(s)"
          + (f"; {batch.failed} failed" if batch.failed else ""), file=sys.stderr)
    if batch.failed:
        raise KlonError(f"{batch.failed} of {len(items)} file(s) failed (see above)")


HANDLERS = {"process": process}
