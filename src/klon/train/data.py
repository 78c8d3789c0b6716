"""Paired input/target audio for training a neural gain stage: loading, checks, segments, split.

Three layouts are read (`load` tells them apart):
- the reference data's: DataIn/ and Data<percent>/ folders of matching int16 WAVs (x = int16/2^15,
  y = 2 int16/2^15, scored from sample 14000: the simulator's power-up transient comes first);
- a `klon dataset` folder: dataset.json + input/ + target/ (float WAVs in volts); with
  `--gain moving` the input files carry the Gain as a second channel (`knobs`);
- any folder with input/ and target/ subfolders of matching WAVs, or one long input/target pair
  (`load_pair`), cut into segments.

Every segment carries `score_start` samples of context in front: the model's state warms up on
them and the loss and scores ignore them.
"""
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from klon.core import audio
from klon.core.errors import KlonError

SEGMENT_SECONDS = 0.5
CONTEXT = 2048  # warm-up samples in front of each segment (the engine pre-rolls as many)
REFERENCE_SCORE_START = 14_000
VALIDATION_SHARE = 1 / 16  # 25 of the 400 reference clips
SILENCE = 1e-5  # volts: a clip whose peak is below this holds no signal
MAX_LAG = 32  # samples of target delay a small recurrent model can still follow


@dataclass
class PairedAudio:
    """Clips x samples of input and target volts (float32), scored from `score_start`; for a
    Gain-conditioned model also the knob inputs, clips x samples x knobs (`knob_names`)."""
    inputs: np.ndarray
    targets: np.ndarray
    sample_rate: int
    score_start: int
    names: list
    source: str
    gain: float = None
    warnings: list = field(default_factory=list)
    knobs: np.ndarray = None
    knob_names: tuple = ()

    def __len__(self):
        return self.inputs.shape[0]

    def subset(self, index):
        index = np.asarray(index)
        return PairedAudio(self.inputs[index], self.targets[index], self.sample_rate,
                           self.score_start, [self.names[i] for i in index], self.source,
                           self.gain, list(self.warnings),
                           None if self.knobs is None else self.knobs[index], self.knob_names)

    def with_knobs(self, names):
        """The same clips with only the knob inputs `names` (in that order; none: an audio-only
        model, the baseline a conditioned one is compared with)."""
        names = tuple(names)
        unknown = [n for n in names if n not in self.knob_names]
        if unknown:
            have = ", ".join(self.knob_names) or "none"
            raise KlonError(f"{self.source} has no {unknown[0]!r} knob input (it has: {have})")
        keep = [self.knob_names.index(n) for n in names]
        return PairedAudio(self.inputs, self.targets, self.sample_rate, self.score_start,
                           self.names, self.source, self.gain, list(self.warnings),
                           self.knobs[:, :, keep] if keep else None, names)

    @property
    def model_inputs(self):
        """Clips x samples x inputs: the audio, then the knobs (what the model reads)."""
        x = self.inputs[:, :, None]
        return x if self.knobs is None else np.concatenate([x, self.knobs], axis=2)


def _read_mono(path, channels=1):
    """1-D samples of a mono file (or channels x samples of a file of `channels`)."""
    x, rate = audio.read(path)
    if x.shape[0] != channels:
        need = "mono" if channels == 1 else f"{channels} channels (the audio, then the knobs)"
        raise KlonError(f"'{path}' has {x.shape[0]} channels: training inputs here must be "
                        f"{need}")
    return (x[0] if channels == 1 else x), rate


def _is_pcm(path):
    """Integer samples, whose full scale is a hard limit (float files may exceed 1.0)."""
    import soundfile
    return soundfile.info(str(path)).subtype.startswith("PCM")


def _read_pairs(input_dir, target_dir, input_scale=1.0, target_scale=1.0, channels=1):
    """Matching files (same names) of two folders -> lists of 1-D arrays (inputs of several
    `channels`: channels x samples, only the audio scaled), names, rate."""
    inputs = {p.stem: p for p in audio.audio_files(input_dir)}
    targets = {p.stem: p for p in audio.audio_files(target_dir)}
    missing = sorted(set(inputs) - set(targets))
    if missing:
        raise KlonError(f"{len(missing)} input files have no target in '{target_dir}' "
                        f"(first: {missing[0]})")
    xs, ys, names, rate = [], [], [], None
    pcm = all(_is_pcm(p) for p in targets.values())
    for name, path in inputs.items():
        x, rx = _read_mono(path, channels)
        y, ry = _read_mono(targets[name])
        if rx != ry:
            raise KlonError(f"'{name}': input at {rx} Hz but target at {ry} Hz; resample one "
                            f"of them so both have the same sample rate")
        if rate is not None and rx != rate:
            raise KlonError(f"'{name}' is at {rx} Hz but earlier files are at {rate} Hz: one "
                            f"dataset needs one sample rate")
        if x.shape[-1] != len(y):
            raise KlonError(f"'{name}': input has {x.shape[-1]} samples but target has {len(y)}"
                            f"; pairs must be the same length (and time-aligned)")
        rate = rx
        if channels > 1:
            _check_knobs(x[1:], name)
            xs.append(np.concatenate([x[:1] * np.float32(input_scale), x[1:]]))
        else:
            xs.append(x * np.float32(input_scale))
        ys.append(y * np.float32(target_scale))
        names.append(name)
    return xs, ys, names, rate, pcm


def _check_knobs(knobs, name):
    if not (np.all(np.isfinite(knobs)) and knobs.min() >= 0.0 and knobs.max() <= 1.0):
        raise KlonError(f"'{name}': the knob channels must hold values in 0..1 (the knob's "
                        f"setting at every sample), got {knobs.min():g}..{knobs.max():g}")


def load_reference(root, gain):
    """The reference data's layout: DataIn/ + Data<percent>/ (e.g. ../shared/data/klon-ltspice)."""
    root = Path(root)
    percent = _gain_percent(gain)
    target_dir = root / f"Data{percent}"
    if not target_dir.is_dir():
        have = sorted(p.name for p in root.glob("Data[0-9]*"))
        raise KlonError(f"no target folder for gain {gain:g} in '{root}' (looked for "
                        f"Data{percent}; found {', '.join(have) or 'none'})")
    xs, ys, names, rate, _ = _read_pairs(root / "DataIn", target_dir, 1.0, 2.0)
    if len({len(x) for x in xs}) != 1:
        raise KlonError(f"clips in '{root / 'DataIn'}' differ in length")
    data = PairedAudio(np.stack(xs), np.stack(ys), rate, REFERENCE_SCORE_START, names,
                       f"{root.name} gain {gain:g}", gain)
    return check(data, raw_targets=data.targets / 2.0)


def _gain_percent(gain):
    if gain is None:
        raise KlonError("this dataset holds targets for several Gain settings: choose one with "
                        "--gain (0, 0.25, 0.5, 0.75 or 1)")
    percent = 100.0 * float(gain)
    if abs(percent - round(percent)) > 1e-9:
        raise KlonError(f"gain {gain} has no target folder (folders are whole percents)")
    return int(round(percent))


def segments(x, y, sample_rate, seconds=SEGMENT_SECONDS, context=CONTEXT):
    """Cut one long aligned pair into segments of `seconds`, each with `context` samples of the
    signal before it in front (the first segment's context is silence). An input of several
    channels (audio, then knobs) gives segments x samples x channels; the knobs are held at
    their first and last values through the silence around the signal."""
    length = int(round(seconds * sample_rate))
    frames = x.shape[-1]
    if frames < length // 4:
        raise KlonError(f"the audio is {frames / sample_rate:.2f} s long: too short to train on "
                        f"(at least {seconds / 4:g} s)")
    count = math.ceil(frames / length)
    pad = count * length - frames
    if x.ndim == 1:
        x = np.concatenate([np.zeros(context, np.float32), x, np.zeros(pad, np.float32)])
    else:
        knobs = np.pad(x[1:], ((0, 0), (context, pad)), mode="edge")
        audio_part = np.pad(x[:1], ((0, 0), (context, pad)))
        x = np.concatenate([audio_part, knobs]).T
    y = np.concatenate([np.zeros(context, np.float32), y, np.zeros(pad, np.float32)])
    starts = np.arange(count) * length
    xs = np.stack([x[s:s + context + length] for s in starts])
    ys = np.stack([y[s:s + context + length] for s in starts])
    return xs, ys


def load_pair(input_path, target_path, seconds=SEGMENT_SECONDS, context=CONTEXT):
    """One long input recording and its target, cut into segments."""
    x, rx = _read_mono(input_path)
    y, ry = _read_mono(target_path)
    pcm = _is_pcm(target_path)
    if rx != ry:
        raise KlonError(f"input '{input_path}' is at {rx} Hz but target '{target_path}' at {ry} "
                        f"Hz; both need the same sample rate")
    if len(x) != len(y):
        raise KlonError(f"input '{input_path}' has {len(x)} samples but target '{target_path}' "
                        f"has {len(y)}; they must be the same length (and time-aligned)")
    xs, ys = segments(x, y, rx, seconds, context)
    names = [f"{Path(input_path).stem}@{i * seconds:g}s" for i in range(len(xs))]
    return check(PairedAudio(xs, ys, rx, context, names, Path(input_path).name),
                 raw_targets=ys if pcm else None)


def load_folders(folder, seconds=SEGMENT_SECONDS, context=CONTEXT):
    """A folder with input/ and target/ (and optionally a `klon dataset` manifest): every file
    pair is cut into segments."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    knob_names = tuple(manifest.get("knobs", ()))
    xs, ys, names, rate, pcm = _read_pairs(folder / "input", folder / "target",
                                           channels=1 + len(knob_names))
    inputs, targets, segment_names = [], [], []
    for x, y, name in zip(xs, ys, names, strict=True):
        sx, sy = segments(x, y, rate, seconds, context)
        inputs.append(sx)
        targets.append(sy)
        segment_names += [f"{name}@{i * seconds:g}s" for i in range(len(sx))]
    inputs = np.concatenate(inputs)
    knobs = None
    if knob_names:
        inputs, knobs = np.ascontiguousarray(inputs[:, :, 0]), inputs[:, :, 1:].copy()
    data = PairedAudio(inputs, np.concatenate(targets), rate, context, segment_names,
                       folder.name, manifest.get("gain"), knobs=knobs, knob_names=knob_names)
    return check(data, raw_targets=data.targets if pcm else None)


def read_manifest(folder):
    """A `klon dataset` folder's dataset.json ({} where there is none)."""
    path = Path(folder) / "dataset.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise KlonError(f"cannot read '{path}': {error}") from None


def load(path, gain=None):
    """Whatever training data `path` names (see the module notes)."""
    path = Path(path)
    if not path.exists():
        raise KlonError(f"no training data at '{path}': no such file or folder")
    if not path.is_dir():
        raise KlonError(f"'{path}' is a file: give a folder (DataIn/ + Data<percent>/, or input/ "
                        f"+ target/), or an input and a target file with --input/--target")
    if (path / "DataIn").is_dir():
        return load_reference(path, gain)
    if any(path.glob("gain_[0-9]*")):  # `klon dataset --gain all`: one folder per gain
        folder = path / f"gain_{_gain_percent(gain)}"
        if not folder.is_dir():
            raise KlonError(f"no dataset for gain {gain:g} in '{path}' (looked for {folder.name})")
        path = folder
    if (path / "input").is_dir() and (path / "target").is_dir():
        data = load_folders(path)
        if data.knob_names and gain is not None:
            raise KlonError(f"'{path}' moves the {', '.join(data.knob_names)} knob during its "
                            f"clips (a Gain-conditioned dataset): train it without --gain")
        if gain is not None and data.gain is not None and abs(data.gain - gain) > 1e-9:
            raise KlonError(f"'{path}' holds targets rendered at gain {data.gain:g}, not {gain:g}")
        if data.gain is None:
            data.gain = gain
        return data
    raise KlonError(f"'{path}' is not a training dataset: expected DataIn/ and Data<percent>/ "
                    f"folders, or input/ and target/ folders of matching audio files")


def check(data, raw_targets=None):
    """Refuse what cannot train; note (data.warnings) what will train badly. `raw_targets` are
    integer-PCM targets as stored, full scale 1 (float files have no full scale to clip at)."""
    scored = slice(data.score_start, None)
    if data.inputs.shape[1] <= data.score_start:
        raise KlonError(f"clips of {data.inputs.shape[1]} samples leave nothing to score after "
                        f"sample {data.score_start}")
    peak_x = np.max(np.abs(data.inputs[:, scored]), axis=1)
    peak_y = np.max(np.abs(data.targets[:, scored]), axis=1)
    silent = (peak_x < SILENCE) | (peak_y < SILENCE)
    if silent.all():
        raise KlonError(f"every clip of {data.source} is silent (peak below {SILENCE:g} V in "
                        f"the input or the target): nothing to learn from")
    if silent.any():
        keep = np.flatnonzero(~silent)
        data.warnings.append(f"left out {int(silent.sum())} silent clips (first: "
                             f"{data.names[int(np.flatnonzero(silent)[0])]})")
        raw_targets = None if raw_targets is None else raw_targets[keep]
        data = data.subset(keep)
    clipped = np.zeros(len(data), bool) if raw_targets is None else \
        np.max(np.abs(raw_targets[:, scored]), axis=1) >= 0.9999
    if clipped.any():
        data.warnings.append(f"the target reaches full scale in {int(clipped.sum())} of "
                             f"{len(data)} clips (first: {data.names[int(np.argmax(clipped))]}): "
                             f"the model will learn that clipping")
    lag = latency(data.inputs[:, scored], data.targets[:, scored])
    if lag < 0 or lag > MAX_LAG:
        data.warnings.append(f"the target is {'ahead of' if lag < 0 else 'behind'} the input by "
                             f"{abs(lag)} samples (cross-correlation peak): check the alignment; "
                             f"a causal model cannot learn a target that leads its input")
    return data


def latency(inputs, targets, max_lag=1024):
    """Lag (samples) of targets behind inputs at the peak of their summed cross-correlation
    magnitude (negative: the target leads)."""
    n = inputs.shape[1]
    size = 1 << int(math.ceil(math.log2(2 * n)))
    spectrum = np.sum(np.conj(np.fft.rfft(inputs, size)) * np.fft.rfft(targets, size), axis=0)
    correlation = np.fft.irfft(spectrum, size)
    lags = np.r_[np.arange(0, max_lag + 1), np.arange(-max_lag, 0)]
    values = np.abs(np.r_[correlation[:max_lag + 1], correlation[-max_lag:]])
    return int(lags[np.argmax(values)])


def split(count, validation=None, seed=0):
    """A seeded, reproducible (train, validation) split of clip indices."""
    if validation is None:
        validation = max(1, round(count * VALIDATION_SHARE))
    if not 0 < validation < count:
        raise KlonError(f"cannot hold out {validation} of {count} clips for validation")
    order = np.random.default_rng(seed).permutation(count)
    return np.sort(order[validation:]), np.sort(order[:validation])
