"""Audio file reading and writing, with one-line errors that name the file and the problem.

Whole files (`read`, `write`) or block by block (`open_audio`'s AudioReader, AudioWriter), with
the same checks either way: a truncated, empty or unreadable file, NaN/Inf (with where), the
output's format, folder and permissions before any audio is written, and the file written
whole or not at all. Audio arrays are channels x frames throughout klon (soundfile uses
frames x channels).
"""
import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from klon.core.errors import KlonError
from klon.core.files import atomic_path, check_writable
from klon.core.processor import MAX_CHANNELS

# extensions soundfile does not map to a format by itself
_EXTENSION_ALIASES = {"AIF": "AIFF", "AIFC": "AIFF", "SND": "AU", "OGA": "OGG", "OPUS": "OGG"}
# libsndfile logs a data chunk longer than the file as e.g. "data : 4000 (should be 1979)"
_SHORT_CHUNK = re.compile(r"^\s*(?:data|SSND|riff)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# streaming writers leave these sizes in the header when they never learn the real length
_UNKNOWN_SIZES = {0, 0x7FFFFFFF, 0xFFFFFFFF}
_COMMON_EXTENSIONS = ".wav, .flac, .aiff, .w64, .caf, .ogg"


AUDIO_EXTENSIONS = (".wav", ".flac", ".aiff", ".aif", ".w64", ".caf", ".ogg")


def _natural(path: Path) -> list:
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", path.name)]


def audio_files(folder: str | os.PathLike) -> list[Path]:
    """The audio files directly in `folder`, in natural order (sample2 before sample10)."""
    files = sorted((p for p in Path(folder).iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS),
                   key=_natural)
    if not files:
        raise KlonError(f"no audio files in '{folder}'")
    return files


def as_channels_frames(x) -> np.ndarray:
    """1-D -> (1, n); 2-D (channels, frames) kept; anything else is refused."""
    x = np.asarray(x)
    if x.ndim == 1:
        return x.reshape(1, -1)
    if x.ndim == 2:
        return x
    raise KlonError(f"audio must be 1-D (mono) or channels x frames, got {x.ndim} dimensions")


def resample(x: np.ndarray, rate: float, target_rate: float) -> np.ndarray:
    """float32 `x` (frames on the last axis) from `rate` to `target_rate`: polyphase, scipy's
    Kaiser-windowed low-pass. The same signal back when the rates agree."""
    if rate == target_rate:
        return x
    from fractions import Fraction

    from scipy.signal import resample_poly
    ratio = Fraction(int(target_rate), int(rate))
    return resample_poly(x, ratio.numerator, ratio.denominator, axis=-1).astype(np.float32)


def _reason(error):
    """libsndfile's own words (without soundfile's "Error opening ..." prefix), on one line."""
    text = getattr(error, "error_string", None) or str(error) or type(error).__name__
    return " ".join(text.split())


def _describe_non_finite(audio, sample_rate, start=0, count=None):
    """'N NaN/Inf samples, the first at frame F (T s), channel C' for a channels x frames block
    that starts at frame `start` of its file; `count`: the file's total, where more than this
    block was counted."""
    if count is None:
        count = int(np.count_nonzero(~np.isfinite(audio)))
    plural = "s" if count != 1 else ""
    return (f"{count} NaN/Inf sample{plural}, the first at "
            f"{_describe_offset(audio, sample_rate, start)}")


_READ_ERRORS = (sf.SoundFileError, RuntimeError, ValueError, TypeError, OSError)
# subtypes that hold samples beyond +-1 (every other one clips there)
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")


def _describe_offset(audio, sample_rate, start):
    """'frame F (T s), channel C' of the first NaN/Inf in a block that starts at frame
    `start` of the file."""
    bad = ~np.isfinite(audio)
    frame = int(np.argmax(bad.any(axis=0)))
    channel = int(np.argmax(bad[:, frame]))
    where = f"frame {start + frame}"
    if sample_rate:
        where += f" ({(start + frame) / sample_rate:.3f} s)"
    return f"{where}, channel {channel + 1}"


class AudioReader:
    """An audio file opened for reading block by block (`open_audio`), with every check
    `read` makes: the file's header is checked on opening, each block for NaN/Inf, and the
    frames decoded against the frames promised at the end (a truncated FLAC shows only
    there). `sample_rate`, `channels` and `frames` (as the header says) are known at once."""

    def __init__(self, path: str | os.PathLike):
        name = self.name = os.fspath(path)
        if not os.path.exists(name):
            raise KlonError(f"cannot read '{name}': no such file")
        if os.path.isdir(name):
            raise KlonError(f"cannot read '{name}': it is a directory, not an audio file")
        if not os.access(name, os.R_OK):
            raise KlonError(f"cannot read '{name}': permission denied")
        try:
            self.file = sf.SoundFile(name)
            log = self.file.extra_info
        except _READ_ERRORS as error:
            raise KlonError(f"cannot read '{name}': not a readable audio file "
                            f"({_reason(error)})") from None
        try:
            for match in _SHORT_CHUNK.finditer(log):
                size, present = int(match.group(1)), int(match.group(2))
                if present < size and size not in _UNKNOWN_SIZES:
                    raise KlonError(f"cannot read '{name}': the file is truncated (its header "
                                    f"promises {size} bytes of audio, only {present} are "
                                    f"there)")
            if self.file.frames == 0:
                raise KlonError(f"cannot read '{name}': the file holds no audio (0 frames)")
        except KlonError:
            self.file.close()
            raise
        self.sample_rate = self.file.samplerate
        self.channels = self.file.channels
        self.frames = self.file.frames
        self.decoded = 0  # frames read so far

    def __enter__(self) -> "AudioReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()

    def _read(self, frames: int) -> np.ndarray:
        try:
            return self.file.read(frames, dtype="float32", always_2d=True)
        except _READ_ERRORS as error:
            raise KlonError(f"cannot read '{self.name}': not a readable audio file "
                            f"({_reason(error)})") from None

    def next_block(self, frames: int | None = None) -> np.ndarray | None:
        """The next float32 channels x frames block of up to `frames` frames (None: the rest
        of the file), checked for NaN/Inf; None at the end, once the frames decoded have been
        checked against the frames promised."""
        data = self._read(-1 if frames is None else frames)
        if data.shape[0] == 0:
            if self.decoded < self.frames:
                raise KlonError(f"cannot read '{self.name}': the file is truncated or corrupt "
                                f"(its header promises {self.frames} frames, only "
                                f"{self.decoded} could be decoded)")
            return None
        block = np.ascontiguousarray(data.T)
        if not np.all(np.isfinite(block)):
            self._refuse_non_finite(block, self.decoded)
        self.decoded += block.shape[1]
        return block

    def blocks(self, frames: int | None = None) -> Iterator[np.ndarray]:
        """The blocks of `next_block` to the end of the file."""
        while (block := self.next_block(frames)) is not None:
            yield block

    def _refuse_non_finite(self, block, start):
        """The error for NaN/Inf in a block that starts at frame `start`: the rest of the
        file is read (not processed) to count them all, so the message matches `read`'s."""
        count = int(np.count_nonzero(~np.isfinite(block)))
        with contextlib.suppress(KlonError):
            while (rest := self._read(1 << 16)).shape[0]:
                count += int(np.count_nonzero(~np.isfinite(rest)))
        raise KlonError(f"cannot use '{self.name}': it holds "
                        f"{_describe_non_finite(block, self.sample_rate, start, count)}")


def open_audio(path: str | os.PathLike) -> AudioReader:
    """An audio file opened for block-by-block reading, its header checked (AudioReader)."""
    return AudioReader(path)


def read(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read any file libsndfile understands -> (float32 channels x frames, sample_rate)."""
    with AudioReader(path) as reader:
        audio = reader.next_block()
        reader.next_block()  # the end: the truncation check
        return audio, reader.sample_rate


def _format_for(name):
    extension = os.path.splitext(name)[1][1:].upper()
    fmt = _EXTENSION_ALIASES.get(extension, extension)
    if not extension or fmt not in sf.available_formats():
        raise KlonError(f"cannot write '{name}': unknown audio format "
                        f"'{extension.lower() or '(no extension)'}' (try {_COMMON_EXTENSIONS})")
    return fmt


def best_subtype(path: str | os.PathLike) -> str:
    """The subtype klon writes to `path` unless told otherwise: 32-bit float where the format
    holds it (volts beyond +-1 survive), else 24-bit PCM, else the format's own default."""
    fmt = _format_for(os.fspath(path))
    for subtype in ("FLOAT", "PCM_24"):
        if sf.check_format(fmt, subtype):
            return subtype
    return sf.default_subtype(fmt)


class AudioWriter:
    """An audio file written block by block, whole or not at all (klon.core.files.atomic_path):
    a context manager whose `write(block)` takes channels x frames (or 1-D mono) blocks; the
    file appears when the block ends without an error.

    Every check is made on construction, before any audio exists: the format and subtype, the
    rate, the destination (its folder, read-only, a directory) and that it is not the file
    `protect` (the input). Blocks holding NaN/Inf are refused. In a format that clips at +-1
    (every subtype but FLOAT and DOUBLE) the samples beyond it are counted in `clipped`;
    `peak` is the largest magnitude written, `frames` the frames written."""

    def __init__(self, path: str | os.PathLike, sample_rate: float, channels: int,
                 subtype: str | None = "FLOAT", protect: str | os.PathLike | None = None):
        name = self.name = os.fspath(path)
        if os.path.isdir(name):  # said before its lack of an extension
            raise KlonError(f"cannot write '{name}': it is a directory")
        self.format = fmt = _format_for(name)
        if subtype is None:
            subtype = sf.default_subtype(fmt)
        subtype = subtype.upper()
        if not sf.check_format(fmt, subtype):
            allowed = ", ".join(sf.available_subtypes(fmt))
            raise KlonError(f"cannot write '{name}': {fmt} files cannot hold {subtype} samples "
                            f"(choose one of {allowed})")
        if channels > MAX_CHANNELS:
            raise KlonError(f"cannot write '{name}': {channels} channels; audio must be channels "
                            f"x frames (transpose a frames x channels array)")
        if channels == 0:
            raise KlonError(f"cannot write '{name}': the audio has no channels")
        if int(sample_rate) != sample_rate or sample_rate <= 0:
            raise KlonError(f"cannot write '{name}': sample rate must be a positive whole number "
                            f"of Hz, got {sample_rate}")
        if protect is not None and os.path.exists(name) and os.path.exists(protect) \
                and os.path.samefile(name, protect):
            raise KlonError(f"cannot write '{name}': it would overwrite the input file")
        check_writable(name)
        self.subtype, self.sample_rate, self.channels = subtype, int(sample_rate), channels
        self.clips = subtype not in FLOAT_SUBTYPES
        self.clipped = 0
        self.peak = 0.0
        self.frames = 0
        self.file = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "AudioWriter":
        with self._stack as stack:
            temporary = stack.enter_context(atomic_path(self.name))
            try:
                self.file = stack.enter_context(sf.SoundFile(
                    temporary, "w", self.sample_rate, self.channels, self.subtype,
                    format=self.format))
            except _READ_ERRORS as error:
                raise KlonError(f"cannot write '{self.name}': {_reason(error)}") from None
            self._stack = stack.pop_all()
        return self

    def __exit__(self, kind, error, traceback) -> None:
        # closing the sound file finishes its header, then the rename (or the removal) follows
        try:
            self._stack.__exit__(kind, error, traceback)
        except _READ_ERRORS as failure:
            if kind is None:
                raise KlonError(f"cannot write '{self.name}': {_reason(failure)}") from None
            raise

    def write(self, block) -> None:
        x = as_channels_frames(block)
        if x.shape[0] != self.channels:
            raise KlonError(f"cannot write '{self.name}': a block of {x.shape[0]} channels to a "
                            f"file of {self.channels}")
        if x.shape[1] == 0:
            return
        magnitude = np.abs(x)
        peak = float(np.max(magnitude))
        if not np.isfinite(peak):
            raise KlonError(f"refusing to write '{self.name}': the audio turns NaN/Inf at "
                            f"{_describe_offset(x, self.sample_rate, self.frames)}")
        self.peak = max(self.peak, peak)
        if self.clips and peak > 1.0:
            self.clipped += int(np.count_nonzero(magnitude > 1.0))
        try:
            self.file.write(x.T)
        except _READ_ERRORS as error:
            raise KlonError(f"cannot write '{self.name}': {_reason(error)}") from None
        self.frames += x.shape[1]


def write(path: str | os.PathLike, audio, sample_rate: float, subtype: str | None = "FLOAT",
          protect: str | os.PathLike | None = None) -> None:
    """Write audio (channels x frames, or 1-D mono) to path, format from the extension.

    subtype is a libsndfile subtype ("FLOAT", "PCM_16", "PCM_24", ...; None: the format's
    default). The file appears whole or not at all (klon.core.files.atomic_path). A path that
    is the same file as `protect` (the input) is refused.
    """
    name = os.fspath(path)
    _format_for(name)
    x = as_channels_frames(audio)
    if x.shape[0] <= MAX_CHANNELS and not np.all(np.isfinite(x)):
        raise KlonError(f"refusing to write '{name}': the audio holds "
                        f"{_describe_non_finite(x, sample_rate)}")
    writer = AudioWriter(name, sample_rate, x.shape[0], subtype=subtype, protect=protect)
    with writer:
        writer.write(x)
