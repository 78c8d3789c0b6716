"""Audio file reading and writing, with one-line errors that name the file and the problem.

Audio arrays are channels x frames throughout klon (soundfile uses frames x channels).
"""
import os
import re
from pathlib import Path

import numpy as np
import soundfile as sf

from klon.core.errors import KlonError
from klon.core.files import atomic_path

# extensions soundfile does not map to a format by itself
_EXTENSION_ALIASES = {"AIF": "AIFF", "AIFC": "AIFF", "SND": "AU", "OGA": "OGG", "OPUS": "OGG"}
# libsndfile logs a data chunk longer than the file as e.g. "data : 4000 (should be 1979)"
_SHORT_CHUNK = re.compile(r"^\s*(?:data|SSND|riff)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# streaming writers leave these sizes in the header when they never learn the real length
_UNKNOWN_SIZES = {0, 0x7FFFFFFF, 0xFFFFFFFF}
_COMMON_EXTENSIONS = ".wav, .flac, .aiff, .w64, .caf, .ogg"
_MAX_CHANNELS = 64  # more than this is almost surely a frames x channels array


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


def _describe_non_finite(audio, sample_rate):
    """'N NaN/Inf samples, the first at ...' for a channels x frames array."""
    bad = ~np.isfinite(audio)
    count = int(np.count_nonzero(bad))
    frame = int(np.argmax(bad.any(axis=0)))
    channel = int(np.argmax(bad[:, frame]))
    where = f"frame {frame}"
    if sample_rate:
        where += f" ({frame / sample_rate:.3f} s)"
    plural = "s" if count != 1 else ""
    return f"{count} NaN/Inf sample{plural}, the first at {where}, channel {channel + 1}"


def read(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read any file libsndfile understands -> (float32 channels x frames, sample_rate)."""
    name = os.fspath(path)
    if not os.path.exists(name):
        raise KlonError(f"cannot read '{name}': no such file")
    if os.path.isdir(name):
        raise KlonError(f"cannot read '{name}': it is a directory, not an audio file")
    if not os.access(name, os.R_OK):
        raise KlonError(f"cannot read '{name}': permission denied")
    try:
        with sf.SoundFile(name) as f:
            sample_rate = f.samplerate
            declared = f.frames
            log = f.extra_info
            data = f.read(dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError, OSError) as error:
        raise KlonError(f"cannot read '{name}': not a readable audio file "
                        f"({_reason(error)})") from None
    for match in _SHORT_CHUNK.finditer(log):
        size, present = int(match.group(1)), int(match.group(2))
        if present < size and size not in _UNKNOWN_SIZES:
            raise KlonError(f"cannot read '{name}': the file is truncated (its header promises "
                            f"{size} bytes of audio, only {present} are there)")
    if data.shape[0] < declared:
        raise KlonError(f"cannot read '{name}': the file is truncated or corrupt (its header "
                        f"promises {declared} frames, only {data.shape[0]} could be decoded)")
    if data.shape[0] == 0:
        raise KlonError(f"cannot read '{name}': the file holds no audio (0 frames)")
    audio = np.ascontiguousarray(data.T)
    if not np.all(np.isfinite(audio)):
        raise KlonError(f"cannot use '{name}': it holds {_describe_non_finite(audio, sample_rate)}")
    return audio, sample_rate


def _format_for(name):
    extension = os.path.splitext(name)[1][1:].upper()
    fmt = _EXTENSION_ALIASES.get(extension, extension)
    if not extension or fmt not in sf.available_formats():
        raise KlonError(f"cannot write '{name}': unknown audio format "
                        f"'{extension.lower() or '(no extension)'}' (try {_COMMON_EXTENSIONS})")
    return fmt


def write(path: str | os.PathLike, audio, sample_rate: float, subtype: str | None = "FLOAT",
          protect: str | os.PathLike | None = None) -> None:
    """Write audio (channels x frames, or 1-D mono) to path, format from the extension.

    subtype is a libsndfile subtype ("FLOAT", "PCM_16", "PCM_24", ...; None: the format's
    default). The file appears whole or not at all (klon.core.files.atomic_path). A path that
    is the same file as `protect` (the input) is refused.
    """
    name = os.fspath(path)
    fmt = _format_for(name)
    if subtype is not None and not sf.check_format(fmt, subtype):
        allowed = ", ".join(sf.available_subtypes(fmt))
        raise KlonError(f"cannot write '{name}': {fmt} files cannot hold {subtype} samples "
                        f"(choose one of {allowed})")
    x = as_channels_frames(audio)
    if x.shape[0] > _MAX_CHANNELS:
        raise KlonError(f"cannot write '{name}': {x.shape[0]} channels; audio must be channels x "
                        f"frames (transpose a frames x channels array)")
    if x.shape[0] == 0:
        raise KlonError(f"cannot write '{name}': the audio has no channels")
    if not np.all(np.isfinite(x)):
        raise KlonError(f"refusing to write '{name}': the audio holds "
                        f"{_describe_non_finite(x, sample_rate)}")
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise KlonError(f"cannot write '{name}': sample rate must be a positive whole number "
                        f"of Hz, got {sample_rate}")
    if os.path.isdir(name):
        raise KlonError(f"cannot write '{name}': it is a directory")
    if protect is not None and os.path.exists(name) and os.path.exists(protect) \
            and os.path.samefile(name, protect):
        raise KlonError(f"cannot write '{name}': it would overwrite the input file")
    directory = os.path.dirname(os.path.abspath(name))
    if not os.path.isdir(directory):
        raise KlonError(f"cannot write '{name}': directory '{directory}' does not exist")

    try:
        with atomic_path(name) as temporary:
            try:  # made first, so a folder that refuses files says why in the system's words
                os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            except OSError as error:
                raise KlonError(f"cannot write '{name}': {error.strerror.lower()}") from None
            sf.write(temporary, x.T, int(sample_rate), subtype=subtype, format=fmt)
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError, OSError) as error:
        raise KlonError(f"cannot write '{name}': {_reason(error)}") from None
