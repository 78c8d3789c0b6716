"""The processor contract every stage, gain stage and pedal follows, implemented once here.

A processor has a `sample_rate`, a `latency` (samples of delay when streaming), `channels`,
`reset(channels)`, `process(block, out=None)` for one block of a stream (float32 out by
default) and `__call__(audio)` for a whole signal (fresh state, the latency removed).
Subclasses say what a block costs in `render(x, y)`: one compiled call on checked channels x
frames views. Nothing reaches a compiled kernel before it is checked here.

What `process` and `__call__` accept (`as_volts`, `audio_layout`):

- layout: 1-D is mono; 2-D is channels x frames (klon's own layout) or frames x channels
  (soundfile's, NumPy audio's), told apart by size: at most MAX_CHANNELS (64) channels, so a
  side longer than 64 is the frames. The result comes back in the layout given. When both
  sides are 64 or less (a short block): the side equal to the processor's channel count is
  the channels (once a 2-D block has streamed, or after `reset(channels)` with 2 or more),
  else the layout of the blocks before; a processor that has streamed no 2-D block takes the
  shorter side as the channels (as pedalboard does), except that a single column, (n, 1), is
  n channels of one frame (klon's own layout: pass a mono column 1-D). A square block (as many
  frames as channels) follows the blocks before; with none, it is channels x frames if the
  processor was reset to that many channels, else refused (a KlonError). More than 64
  channels either way round is refused. The layout a processor follows is its public
  `frames_first` (None until a 2-D block has streamed): set it to say which layout is coming.
- samples: float32 and float64 as they are (volts); float16 is widened to float32 and
  longdouble narrowed to float64 (the precision the kernels compute in). Integer arrays are
  PCM and are scaled so full scale is 1.0 V: int16 / 2**15, int32 / 2**31, int8 / 2**7, int64
  / 2**63, unsigned ones offset by half their range first (uint8: (x - 128) / 128), as
  reading a PCM file does. A Python list of numbers is volts. bool, complex and anything else
  is refused.
- `out`: a writable NumPy float32 or float64 array shaped like the block (in the block's
  layout); anything else is a KlonError before any compiled code runs. `out` may be the block
  itself (or overlap it): the block is then copied before the kernel writes.

A stream's steady block, the kind a host hands over (float32 or float64, C-ordered, the
stream's layout and channel count, `out` of the same shape, writable and apart from it: see
`steady_pair`), needs none of this and goes straight to `render` after a few attribute checks;
that is most of what a small block's call costs.

Knobs are `Knob` descriptors: they check the range [0, 1] and glide to a new value over
GLIDE_SECONDS, in a smoother array the kernels read (see klon.core.glide).
"""
import math
from typing import Any

import numpy as np

from klon.core.errors import KlonError
from klon.core.glide import CURRENT, REMAINING, TARGET, smoother_set_target

MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 22_050, 192_000
GLIDE_SECONDS = 0.05  # how long a moved knob takes to reach its new value
MAX_CHANNELS = 64  # klon's channel limit (klon.core.audio's too): a longer side is the frames
OUT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))  # what the kernels write


def check_sample_rate(sample_rate: Any) -> float:
    """The rate as a float, or a KlonError outside what klon runs at."""
    try:
        rate = float(sample_rate)
    except (TypeError, ValueError):
        raise KlonError(f"sample rate must be a number, got {sample_rate!r}") from None
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise KlonError(f"unsupported sample rate {rate:g} Hz: klon runs at "
                        f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz")
    return rate


def check_knob(name: str, value: Any) -> float:
    """A knob position as a float in [0, 1], or a KlonError naming the knob."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise KlonError(f"{name} must be a number between 0 and 1, got {value!r}") from None
    if not 0.0 <= value <= 1.0:
        raise KlonError(f"{name} must be between 0 and 1, got {value:g}")
    return value


def new_glide(value: float) -> np.ndarray:
    """A smoother array at rest at `value` (the layout of klon.core.glide)."""
    glide = np.zeros(4)
    glide[CURRENT] = glide[TARGET] = value
    return glide


def as_volts(audio: Any, what: str = "audio") -> np.ndarray:
    """`audio` as a float32 or float64 array of volts (see the module's docstring): floats as
    they are (float16 widened, longdouble narrowed), integer arrays as PCM scaled to full scale
    1.0, a list of numbers as volts; bool, complex or other samples: a KlonError."""
    if isinstance(audio, np.ndarray):
        x = audio
    else:
        try:
            x = np.asarray(audio)
        except (TypeError, ValueError) as error:  # ragged lists, ...
            raise KlonError(f"{what} must be an array of samples: {error}") from None
        if x.dtype.kind in "iu":  # numbers written out by hand are volts, not PCM
            x = x.astype(np.float64)
    kind = x.dtype.kind
    if kind == "f":
        if x.dtype.itemsize < 4:
            return x.astype(np.float32)  # numba has no float16 arithmetic
        if x.dtype.itemsize > 8:
            return x.astype(np.float64)  # nor longdouble
        if not x.dtype.isnative:  # nor byte-swapped arrays
            return x.astype(x.dtype.newbyteorder("="))
        return x
    if kind in "iu":
        half = 2.0 ** (8 * x.dtype.itemsize - 1)  # full scale: int16 32768, uint8 128
        if kind == "u":
            return ((x.astype(np.float64) - half) / half).astype(np.float32)
        return (x.astype(np.float64) / half).astype(np.float32)
    raise KlonError(f"{what} must hold real numbers (float samples, or integer PCM), got "
                    f"{x.dtype} samples")


def audio_layout(shape: tuple, channels: int = 0, frames_first: bool | None = None,
                 what: str = "audio") -> bool | None:
    """How a 1-D or 2-D array of `shape` holds its channels: None (1-D, mono), False (channels
    x frames) or True (frames x channels); a KlonError if it cannot be told (see the module's
    docstring). `channels` is the processor's channel count and `frames_first` the layout of
    the blocks before (None: no 2-D block yet), which settle a short block (both sides
    MAX_CHANNELS or less). A side equal to the channel count wins over the stream's layout and
    the shorter side: a stream's last block may be shorter than its channel count."""
    if len(shape) == 1:
        return None
    if len(shape) != 2:
        raise KlonError(f"{what} must be 1-D (mono) or 2-D (channels x frames), got shape "
                        f"{shape}")
    rows, columns = shape
    if rows <= MAX_CHANNELS < columns:
        return False
    if columns <= MAX_CHANNELS < rows:
        return True
    if rows > MAX_CHANNELS:
        raise KlonError(f"{what} of shape {shape} has more than {MAX_CHANNELS} channels either "
                        f"way round: klon takes up to {MAX_CHANNELS} channels")
    # the channel count says something once a 2-D block has streamed, or if it is not the 1
    # every processor starts with
    known = frames_first is not None or channels > 1
    if rows != columns:
        if known and (rows == channels or columns == channels):
            return columns == channels
        if frames_first is not None:
            return frames_first
        if columns == 1:  # one frame of several channels: klon's own layout
            return False
        return rows > columns  # the shorter side is the channels, as pedalboard reads it
    # square: the stream's layout decides; with none yet, a processor reset to that many
    # channels takes klon's own layout (a tiny file streamed by klon.core.streaming)
    if rows == 1 or frames_first is not None or channels == rows:
        return bool(frames_first)
    raise KlonError(f"{what} of shape {shape} is ambiguous: as many frames as channels, and "
                    f"no block before it to follow; set the processor's frames_first (False: "
                    f"channels x frames, klon's own layout; True: frames x channels) or call "
                    f"reset({rows}) for channels x frames first")


def all_finite(x: np.ndarray) -> bool:
    """No NaN or Inf in a non-empty x, allocating no array: NumPy's max and min carry a NaN
    through, and cannot overflow as a sum could."""
    return math.isfinite(x.max()) and math.isfinite(x.min())


def check_out(out: Any, shape: tuple | None = None, what: str = "block") -> np.ndarray:
    """`out` if it is a writable float32 or float64 NumPy array (of `shape`, where given),
    else a KlonError (a kernel writing past a wrong-shaped buffer would corrupt memory; an
    integer one would truncate)."""
    if not isinstance(out, np.ndarray) or out.dtype not in OUT_DTYPES \
            or (shape is not None and out.shape != shape):
        got = (f"{out.dtype} with shape {out.shape}" if isinstance(out, np.ndarray)
               else type(out).__name__)
        shaped = f" shaped like the {what} {shape}" if shape is not None else ""
        raise KlonError(f"out must be a writable float32 or float64 array{shaped}, got {got}")
    if not out.flags.writeable:
        raise KlonError("out is read-only: pass a writable float32 or float64 array (or none, "
                        "to get a new one)")
    return out


def steady_pair(x: Any, y: Any) -> bool:
    """Can a block and its `out` go to a kernel as they are, with none of the conversions of the
    general path: float NumPy arrays of one shape, C-ordered, y writable and apart from x?
    These checks cost well under a microsecond, the general path several."""
    if not (type(x) is np.ndarray and type(y) is np.ndarray and y.shape == x.shape
            and x.dtype in OUT_DTYPES and y.dtype in OUT_DTYPES and x.flags.c_contiguous
            and y.flags.carray and x.size > 0):  # carray: C-ordered and writable
        return False
    # two arrays that own their memory are apart unless they are one; views are checked
    return x.base is None and y.base is None and x is not y or not np.may_share_memory(x, y)


class Knob:
    """A knob in [0, 1]. Reading gives the value it is set to (the target of a glide in
    progress); setting checks the range and starts a GLIDE_SECONDS glide there.

    The glide lives in the processor's `glides[name]` smoother array, which its kernels read.
    `via="part"` hands the knob on to the processor's `part` (a pedal's gain knob is its gain
    stage's). A processor that must act before a glide starts (the neural bank warms up the
    models the glide will pass) defines `knob_moving(name, value)`."""

    def __init__(self, doc: str = "", via: str | None = None):
        self.__doc__ = doc
        self.via = via
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, processor: Any, owner: type | None = None) -> Any:
        if processor is None:
            return self
        if self.via is not None:
            return getattr(getattr(processor, self.via), self.name)
        return processor.glides[self.name].item(TARGET)

    def __set__(self, processor: Any, value: Any) -> None:
        if self.via is not None:
            setattr(getattr(processor, self.via), self.name, value)
            return
        value = check_knob(self.name, value)
        processor.knob_moving(self.name, value)
        smoother_set_target(processor.glides[self.name], value, processor.glide_samples)


def knob_names(cls: type) -> list[str]:
    """The names of a processor class's knobs, in the order they were declared."""
    names = []
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, Knob) and name not in names:
                names.append(name)
    return names


class Processor:
    """The contract (see the module's docstring). A subclass sets `sample_rate` and
    `channels`, calls `init_knobs` with its knobs' starting values, and defines `render`;
    `latency` is 0 unless it says otherwise."""

    sample_rate: float
    channels: int
    latency: int = 0
    # the layout of the last 2-D block (see audio_layout); a user may set it beforehand
    frames_first: bool | None = None
    # True where `render` itself raises a KlonError on NaN or Inf (its kernel checks as it
    # reads); otherwise `stream` checks the block first
    refuses_non_finite: bool = False
    glides: dict[str, np.ndarray]
    glide_samples: int

    def init_knobs(self, **values: Any) -> None:
        """Each knob at rest at its checked starting value."""
        self.glide_samples = int(round(GLIDE_SECONDS * self.sample_rate))
        self.glides = {name: new_glide(check_knob(name, value)) for name, value in values.items()}

    def knob_moving(self, name: str, value: float) -> None:
        """Called before a knob starts gliding to `value` (nothing to do by default)."""

    def gliding(self, name: str) -> bool:
        """Is the knob `name` still on its way to its value?"""
        return self.glides[name].item(REMAINING) > 0.0

    def reset(self, channels: int | None = None) -> None:
        """Back to rest, as if just switched on; a channel count re-sizes the state."""
        raise NotImplementedError

    def render(self, x: np.ndarray, y: np.ndarray) -> None:
        """One checked block: x, y channels x frames (y float, maybe float32; x float)."""
        raise NotImplementedError

    def process(self, block: Any, out: np.ndarray | None = None) -> np.ndarray:
        """Stream one block with the state kept: 1-D (mono), channels x frames or frames x
        channels, float or integer PCM (see the module's docstring). Returns float32 in the
        block's layout, or fills `out` (float32 or float64, the block's shape; it may be the
        block itself). A new channel count resets the state first. NaN or Inf in the block: a
        KlonError, the state untouched."""
        if out is not None and self._steady(block, out):
            if block.ndim == 1:
                self.render(block[np.newaxis], out[np.newaxis])
            else:
                self.render(block, out)
            return out
        x = as_volts(block, "block")
        frames_first = audio_layout(x.shape, self.channels, self.frames_first, "block")
        if out is None:
            # frames x channels comes back as a view of a channels x frames array
            out = np.empty(x.shape[::-1] if frames_first else x.shape, dtype=np.float32)
            out = out.T if frames_first else out
        else:
            check_out(out, x.shape)
        if x.size == 0:
            return out
        if frames_first is None:
            # [np.newaxis] is always a view (reshape would copy a strided out, losing it)
            self.stream(x[np.newaxis], out[np.newaxis])
        elif frames_first:
            self.frames_first = True
            self.stream(x.T, out.T)
        else:
            self.frames_first = False
            self.stream(x, out)
        return out

    def _steady(self, x: Any, y: Any) -> bool:
        """Is this block the stream's steady kind (`steady_pair`), mono 1-D or channels x
        frames like the blocks before, for a processor whose kernel refuses NaN and Inf
        itself?"""
        if not (self.refuses_non_finite and steady_pair(x, y)):
            return False
        if x.ndim == 2:
            return self.frames_first is False and x.shape[0] == self.channels
        return x.ndim == 1 and self.channels == 1

    def stream(self, x: np.ndarray, y: np.ndarray) -> None:
        """A checked block (x, y channels x frames views, x float32/float64, y float32/float64
        and writable) through `render`, the channel count followed. The kernels only ever get
        C-ordered arrays (no strided or transposed variants to compile): x is copied when it
        is not C-ordered, or when `y` overlaps it (the kernel would overwrite input it has yet
        to read); a y that is not C-ordered is filled from a C-ordered one."""
        if not self.refuses_non_finite and not all_finite(x):
            raise KlonError("audio contains NaN or Inf samples")
        if x.shape[0] != self.channels:
            self.reset(x.shape[0])
        if not x.flags.c_contiguous or np.may_share_memory(x, y):
            x = np.array(x, order="C")
        if y.flags.c_contiguous:
            self.render(x, y)
            return
        result = np.empty(y.shape, dtype=y.dtype)
        self.render(x, result)
        y[...] = result

    def __call__(self, audio: Any) -> np.ndarray:
        """A whole signal from rest (the state reset first), aligned with its input (the
        latency removed): 1-D (mono), channels x frames or frames x channels, float or integer
        PCM (see the module's docstring). Returns float32 in the layout given."""
        x = as_volts(audio)
        frames_first = audio_layout(x.shape, self.channels, self.frames_first)
        if x.size == 0:
            return np.empty(x.shape, dtype=np.float32)
        x2 = x[np.newaxis] if frames_first is None else x.T if frames_first else x
        channels, frames = x2.shape
        latency = self.latency
        padded = np.zeros((channels, frames + latency), dtype=x2.dtype)
        padded[:, :frames] = x2
        self.reset(channels)
        if frames_first is not None:
            self.frames_first = frames_first
        y = np.empty(padded.shape, dtype=np.float32)
        self.stream(padded, y)
        y = y[:, latency:]
        return y[0] if frames_first is None else y.T if frames_first else y

    def __repr__(self) -> str:
        knobs = "".join(f", {name}={getattr(self, name):g}" for name in knob_names(type(self)))
        return f"{type(self).__name__}({self.sample_rate:g}{knobs}{self.describe()})"

    def describe(self) -> str:
        """What else `repr` shows (", engine='circuit'", ...): nothing by default."""
        return ""
