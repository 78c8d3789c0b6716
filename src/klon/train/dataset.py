"""`klon dataset`: training pairs whose targets are the circuit model's gain stage.

Any input audio (DI recordings, the reference clips, generated playing) goes through
klon.pedal.GainStage at the chosen Gain, diode and sample rate; the folder that comes out
(input/, target/, dataset.json) is what `klon train` reads. Inputs are volts (full scale 1.0 =
1 V at the gain stage's input, the reference data's convention). Sine tones (`tone_seconds`)
put aliasing in view of the loss; `band_limited` renders the targets near alias-free, with the
circuit at BAND_LIMITED_FACTOR times the rate.

With `--gain moving` the Gain is a model input too (a Gain-conditioned model): every clip is
rendered `takes` times, each along its own Gain path (held, swept, turned, drifting; see
gain_path), and each input file has two channels, the audio and the Gain at every sample, the
layout of the model's inputs.
"""
import datetime
import functools
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from klon.core import audio
from klon.core.errors import KlonError
from klon.core.files import atomic_write
from klon.core.processor import GLIDE_SECONDS
from klon.dsp.synth import guitar_phrases
from klon.pedal import GainStage
from klon.pedal.gain_stage import RAMP_STEP

MOVING = "moving"  # the --gain value of a Gain-conditioned dataset
KNOBS = ("gain",)  # the knob inputs of a conditioned model, after the audio
ENDS = 0.1  # share of a Gain path's settings drawn at exactly 0 or 1
BAND_LIMITED_FACTOR = 4  # band-limited targets: the circuit at 4x the rate (and 4x oversampled)


def input_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Audio files named directly or found (non-recursively) in named folders, in order."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            files += audio.audio_files(path)
        elif path.exists():
            files.append(path)
        else:
            raise KlonError(f"cannot read '{path}': no such file or folder")
    return files


def synthetic_inputs(seconds: float, sample_rate: int, seed: int = 0,
                     clip_seconds: float = 4.0) -> list[tuple[str, np.ndarray]]:
    """Generated playing at DI levels: clips of `clip_seconds` whose RMS is log-uniform between
    10 and 300 mV (the reference DI clips span 13..250 mV), peaks capped at 2 V."""
    rng = np.random.default_rng(seed)
    clips = []
    for i in range(int(np.ceil(seconds / clip_seconds))):
        x = guitar_phrases(sample_rate, clip_seconds, 1.0, seed=int(rng.integers(1 << 30)))
        rms = np.exp(rng.uniform(np.log(0.01), np.log(0.3)))
        x *= rms / max(float(np.sqrt(np.mean(x ** 2))), 1e-9)
        peak = float(np.max(np.abs(x)))
        if peak > 2.0:
            x *= 2.0 / peak
        clips.append((f"synth{i:03d}", x.astype(np.float32)))
    return clips


def _clips(inputs, sample_rate, synth_seconds, seed):
    """([(name, volts)], rate, files): the named audio (resampled to `sample_rate` if given)
    and `synth_seconds` of generated playing."""
    files = input_files(inputs) if inputs else []
    if not files and synth_seconds <= 0:
        raise KlonError("no input audio: name files or folders, or ask for --synth SECONDS")
    clips = []
    for path in files:
        x, rate = audio.read(path)
        if x.shape[0] != 1:
            raise KlonError(f"'{path}' has {x.shape[0]} channels: DI recordings are mono "
                            f"(mix or split it first)")
        rate = int(rate)
        target_rate = int(sample_rate or rate)
        clips.append((path.stem, audio.resample(x[0], rate, target_rate), target_rate))
    rates = {r for _, _, r in clips}
    if len(rates) > 1:
        raise KlonError(f"the inputs have different sample rates ({', '.join(map(str, rates))} "
                        f"Hz): give --sample-rate to resample them all to one")
    rate = rates.pop() if rates else int(sample_rate or 44_100)
    names = [name for name, _, _ in clips]
    if len(set(names)) != len(names):
        raise KlonError("two inputs have the same file name: targets would overwrite each other")
    clips = [(name, x) for name, x, _ in clips]
    if synth_seconds > 0:
        clips += synthetic_inputs(synth_seconds, rate, seed)
    return clips, rate, files


def _new_folder(out):
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise KlonError(f"'{out}' already exists and is not an empty folder: choose a new "
                        f"output folder (nothing is overwritten)")
    out.mkdir(parents=True, exist_ok=True)
    (out / "input").mkdir()
    (out / "target").mkdir()
    return out


def sine_tones(seconds: float, sample_rate: int, seed: int = 0,
               clip_seconds: float = 1.0) -> list[tuple[str, np.ndarray]]:
    """Pure tones, the signals aliasing shows on most: clips of `clip_seconds`, each a sine at a
    log-uniform 100 Hz..10 kHz and 30 mV..1.5 V, faded in over 20 ms."""
    rng = np.random.default_rng([seed, 2])
    frames = int(round(clip_seconds * sample_rate))
    fade = np.minimum(1.0, np.arange(frames) / (0.02 * sample_rate))
    t = np.arange(frames) / sample_rate
    clips = []
    for i in range(int(np.ceil(seconds / clip_seconds))):
        frequency = np.exp(rng.uniform(np.log(100.0), np.log(10_000.0)))
        volts = np.exp(rng.uniform(np.log(0.03), np.log(1.5)))
        x = volts * fade * np.sin(2 * np.pi * frequency * t + rng.uniform(0, 2 * np.pi))
        clips.append((f"tone{i:03d}", x.astype(np.float32)))
    return clips


@functools.cache
def band_limit_filter(factor: int) -> np.ndarray:
    """The low-pass between a rate and `factor` times it: 2001 taps, Kaiser beta 16; flat
    (within 1e-6 dB) to 0.47 of the lower rate, below -150 dB from its Nyquist on."""
    from scipy.signal import firwin
    return firwin(2001, 0.96 / factor, window=("kaiser", 16.0))


def band_limited_stage(sample_rate: float, gain: float, diode: str = "1n34a") -> GainStage:
    """The circuit gain stage that renders near alias-free targets for `sample_rate`: at
    BAND_LIMITED_FACTOR times that rate, 4x oversampled."""
    return GainStage(sample_rate * BAND_LIMITED_FACTOR, gain, diode, 4)


def circuit_stage(sample_rate: int, gain: float, diode: str, oversampling: int | None,
                  band_limited: bool) -> GainStage:
    """The gain stage that renders a dataset's targets (a new one per clip costs well under a
    millisecond, and leaves nothing of one clip in the next, whichever process renders it)."""
    if band_limited:
        return band_limited_stage(sample_rate, gain, diode)
    return GainStage(sample_rate, gain, diode, oversampling)


def render_target(settings: tuple, x: np.ndarray, path: np.ndarray | None) -> np.ndarray:
    """One clip's target (float64): x through circuit_stage(*settings), its Gain along `path`
    or held."""
    *_, band_limited = settings
    return targets(circuit_stage(*settings), x, path,
                   BAND_LIMITED_FACTOR if band_limited else 1)


def targets(stage: GainStage, x: np.ndarray, path: np.ndarray | None = None,
            factor: int = 1) -> np.ndarray:
    """The stage's output for x (float64), its Gain along `path` or held. With `factor` > 1
    the stage runs at that many times x's rate: x is taken up and the output back down through
    band_limit_filter(factor) (linear phase, centred: nothing is delayed)."""
    if factor == 1:
        if path is None:
            return stage(x.astype(np.float64).reshape(1, -1))[0]
        return along_path(stage, x, path)
    from scipy.signal import resample_poly
    band_limit = band_limit_filter(factor)
    high = resample_poly(x.astype(np.float64), factor, 1, window=band_limit)
    if path is None:
        y = stage(high.reshape(1, -1))[0]
    else:
        y = along_path(stage, high, np.repeat(path, factor))
    return resample_poly(y, 1, factor, window=band_limit)[:len(x)]


def render(inputs: Iterable[str | os.PathLike], out_dir: str | os.PathLike, gain: float | str,
           diode: str = "1n34a", sample_rate: int | None = None, input_gain_db: float = 0.0,
           synth_seconds: float = 0.0, seed: int = 0, takes: int = 1, *,
           tone_seconds: float = 0.0, oversampling: int | None = None,
           band_limited: bool = False, ends: float = ENDS, use_ray: bool = False,
           log=None) -> Path:
    """Write out_dir/input/*.wav, out_dir/target/*.wav (float32 volts) and dataset.json.
    `inputs` are audio files or folders; `synth_seconds` of generated playing and
    `tone_seconds` of sine tones are added. `gain` is a Gain setting, or MOVING: each clip
    `takes` times along its own Gain path (a share `ends` of its settings at 0 or 1), the
    path as the input files' second channel.
    `oversampling` is the circuit's (default: the engine's for the rate). `band_limited`
    renders near alias-free targets: the circuit at BAND_LIMITED_FACTOR times the rate with
    4x oversampling, low-passed back down (16 times the work). `use_ray` renders the clips as
    tasks on the connected Ray (klon.core.cluster), with the same result."""
    moving = gain == MOVING
    if moving and takes < 1:
        raise KlonError(f"--takes must be at least 1, got {takes}")
    if not 0.0 <= ends <= 1.0:
        raise KlonError(f"--ends must be a share in 0..1, got {ends:g}")
    if band_limited and oversampling not in (None, 4):
        raise KlonError("band-limited targets are rendered with 4x oversampling: leave out "
                        "--oversampling")
    clips, rate, files = _clips(inputs, sample_rate, synth_seconds, seed)
    if tone_seconds > 0:
        clips += sine_tones(tone_seconds, rate, seed)
    out = _new_folder(out_dir)
    scale = np.float32(10.0 ** (input_gain_db / 20.0))
    settings = (rate, 0.0 if moving else gain, diode, oversampling, band_limited)
    paths = np.random.default_rng([seed, 1])
    jobs, names = [], []
    for name, x in clips:
        x = (x * scale).astype(np.float32)
        for take in range(takes if moving else 1):
            path = gain_path(paths, len(x), rate, ends) if moving else None
            names.append(f"{name}-{take}" if moving and takes > 1 else name)
            jobs.append((settings, x, path))
            audio.write(out / "input" / f"{names[-1]}.wav",
                        x if path is None else np.stack([x, path]), rate)

    done = 0

    def write_target(index, y):
        nonlocal done
        audio.write(out / "target" / f"{names[index]}.wav", y.astype(np.float32), rate)
        done += 1
        if log and (done == len(jobs) or done % 50 == 0):
            print(f"rendered {done}/{len(jobs)} clips", file=log, flush=True)

    if use_ray:
        from klon.core.cluster import run_all
        run_all(render_target, jobs, write_target)
    else:
        for index, job in enumerate(jobs):
            write_target(index, render_target(*job))
    stage = circuit_stage(*settings)
    manifest = {"format": "klon-dataset", "target": "klon circuit gain stage",
                "gain": None if moving else gain, "diode": diode, "sample_rate": rate,
                "oversampling": stage.oversampling, "band_limited": band_limited,
                "input_gain_db": input_gain_db, "clips": len(jobs),
                "inputs": [str(p) for p in files], "synth_seconds": synth_seconds,
                "tone_seconds": tone_seconds, "seed": seed}
    if moving:
        manifest.update(knobs=list(KNOBS), takes=takes, ends=ends)
    manifest["created"] = datetime.date.today().isoformat()
    atomic_write(out / "dataset.json", json.dumps(manifest, indent=2) + "\n")
    return out


def gain_path(rng: np.random.Generator, frames: int, rate: float,
              ends: float = ENDS) -> np.ndarray:
    """A Gain value for every sample (float32, 0..1), one of four kinds a player makes:
    held at one setting (two paths in five), swept from one setting to another,
    turned 1 to 3 times (each turn the knob's own GLIDE_SECONDS glide), or drifting (a few
    slow sinusoids, 0.2..3 Hz, folded into 0..1). A share `ends` of the settings is one of
    the knob's ends, 0 or 1, where the circuit changes fastest with the knob."""
    def setting():
        return float(rng.choice([0.0, 1.0])) if rng.random() < ends else float(rng.random())
    kind = rng.choice(["held", "held", "swept", "turned", "drifting"])
    t = np.arange(frames) / rate
    glide = max(1, int(round(GLIDE_SECONDS * rate)))  # no move is faster than the knob's glide
    if kind == "held":
        path = np.full(frames, setting())
    elif kind == "swept":
        start, stop = np.sort(rng.uniform(0, frames, 2)).astype(int)
        a, b = setting(), setting()
        path = np.interp(np.arange(frames), [start, max(stop, start + glide)], [a, b])
    elif kind == "turned":
        path = np.full(frames, setting())
        for at in np.sort(rng.integers(0, frames, int(rng.integers(1, 4)))):
            a, b = path[at], setting()
            ramp = np.linspace(a, b, glide + 1)[1:]
            stop = min(frames, at + glide)
            path[at:stop] = ramp[:stop - at]
            path[stop:] = b
    else:
        path = np.full(frames, rng.random())
        for _ in range(3):
            path += rng.uniform(0.1, 0.4) * np.sin(2 * np.pi * rng.uniform(0.2, 3.0) * t
                                                   + rng.uniform(0, 2 * np.pi))
        path = 1.0 - np.abs(1.0 - np.mod(path, 2.0))  # folded into 0..1, no flat clipped runs
    return np.clip(path, 0.0, 1.0).astype(np.float32)


def along_path(stage: GainStage, x: np.ndarray, path: np.ndarray) -> np.ndarray:
    """The circuit gain stage's output for x with its Gain following `path` (float64).

    The stage's own glides move the pots every RAMP_STEP samples; here the pots take the
    path's value at the start of each such step, set with a glide of one step (so they jump
    there at once), and the stage runs from rest. Its streaming latency is taken off, and the
    pots move that much ahead, so output sample n is the circuit at path[n]."""
    stage.glide_samples = RAMP_STEP
    stage.gain = float(path[0])
    stage.reset(1)
    lag = stage.latency
    padded = np.concatenate([x, np.zeros(lag, np.float32)]).astype(np.float64)[None, :]
    y = np.empty_like(padded)
    if path.min() == path.max():  # held: one call
        stage.process(padded, y)
        return y[0, lag:]
    for start in range(0, padded.shape[1], RAMP_STEP):
        stop = min(start + RAMP_STEP, padded.shape[1])
        stage.gain = float(path[min(max(start - lag, 0), len(path) - 1)])
        stage.process(padded[:, start:stop], y[:, start:stop])
    return y[0, lag:]


def render_gains(inputs: Iterable[str | os.PathLike], out_dir: str | os.PathLike,
                 gains: Sequence[float], log=None, **options) -> list[Path]:
    """`render` (`options` are its keywords) at each of `gains`: into out_dir itself for one
    gain, else into one out_dir/gain_<percent>/ each (the layout `data.load` picks a gain
    from); returns the folders written. The whole dataset is rendered beside out_dir and
    renamed into place at the end, so a failure (or Ctrl-C) leaves no half-written dataset
    behind."""
    inputs, out = list(inputs), Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise KlonError(f"'{out}' already exists and is not an empty folder: choose a new "
                        f"output folder (nothing is overwritten)")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise KlonError(f"cannot make the folder '{out.parent}': {error.strerror or error}") \
            from None
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise KlonError(f"cannot write '{out}': folder '{out.parent}' is not writable")
    work = out.parent / f".{out.name}.{os.getpid()}.partial"
    names = [None] if len(gains) == 1 else [f"gain_{round(100 * gain)}" for gain in gains]
    if MOVING in gains and len(gains) > 1:
        raise KlonError("--gain moving makes one dataset of every Gain: give it alone")
    try:
        for gain, name in zip(gains, names, strict=True):
            if log:
                setting = gain if gain == MOVING else f"{gain:g}"
                print(f"gain {setting} -> {out if name is None else out / name}", file=log)
            render(inputs, work if name is None else work / name, gain, log=log, **options)
        os.replace(work, out)  # onto a missing or empty folder
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return [out if name is None else out / name for name in names]
