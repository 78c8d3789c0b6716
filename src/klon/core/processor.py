"""The processor contract every stage, gain stage and pedal follows, implemented once here.

A processor has a `sample_rate`, a `latency` (samples of delay when streaming), `channels`,
`reset(channels)`, `process(block, out=None)` for one block of a stream (channels x frames or
1-D mono; float32 out by default) and `__call__(audio)` for a whole signal (fresh state, the
latency removed). Subclasses say what a block costs in `render(x, y)`: one compiled call on
checked channels x frames views.

Knobs are `Knob` descriptors: they check the range [0, 1] and glide to a new value over
GLIDE_SECONDS, in a smoother array the kernels read (see klon.core.glide).
"""
from typing import Any

import numpy as np

from klon.core.errors import KlonError
from klon.core.glide import CURRENT, REMAINING, TARGET, smoother_set_target

MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 22_050, 192_000
GLIDE_SECONDS = 0.05  # how long a moved knob takes to reach its new value


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

    def process(self, block: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Stream one block, 1-D (mono) or channels x frames of floats, with the state kept.
        Returns float32, or fills `out` (any float dtype, the block's shape). A new channel
        count resets the state first. NaN or Inf in the block: a KlonError."""
        x = np.asarray(block)
        if x.ndim not in (1, 2) or x.dtype.kind != "f":
            raise KlonError(f"audio must be a float array, 1-D or channels x frames; got "
                            f"{x.dtype} with shape {x.shape}")
        x2 = x.reshape(1, -1) if x.ndim == 1 else x
        if out is None:
            out = np.empty(x.shape, dtype=np.float32)
        elif out.shape != x.shape or out.dtype.kind != "f":
            raise KlonError(f"out must be a float array shaped like the block {x.shape}, got "
                            f"{out.dtype} with shape {out.shape}")
        if x2.shape[0] != self.channels:
            self.reset(x2.shape[0])
        self.render(x2, out if out.ndim == 2 else out.reshape(x2.shape))
        return out

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """A whole signal (1-D mono or channels x frames) from rest, aligned with its input
        (the latency removed); integer input is taken as float32 volts."""
        x = np.asarray(audio)
        if x.dtype.kind != "f":
            x = x.astype(np.float32)
        x2 = x.reshape(1, -1) if x.ndim == 1 else x
        latency = self.latency
        padded = np.concatenate([x2, np.zeros((x2.shape[0], latency), dtype=x2.dtype)], axis=1)
        self.reset(x2.shape[0])
        y = self.process(padded)[:, latency:]
        return y[0] if x.ndim == 1 else y

    def __repr__(self) -> str:
        knobs = "".join(f", {name}={getattr(self, name):g}" for name in knob_names(type(self)))
        return f"{type(self).__name__}({self.sample_rate:g}{knobs}{self.describe()})"

    def describe(self) -> str:
        """What else `repr` shows (", engine='circuit'", ...): nothing by default."""
        return ""
