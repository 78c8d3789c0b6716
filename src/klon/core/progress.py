"""What a long command tells the user while it works: a one-line progress bar (only on a
terminal) and a notice when the first block is slow because the kernels are being compiled."""
import sys
import threading
import time
from typing import TextIO

COMPILE_NOTICE = "klon: compiling kernels, first run only: ~40 s (large neural models: minutes)"
COMPILE_NOTICE_AFTER = 1.0  # seconds: a warm start builds and runs its first block well within


def clock(seconds: float) -> str:
    """1:05, 1:02:03."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class ProgressBar:
    """A `\\r` line on `stream` (stderr) while work of `total` units is done: percentage, a bar,
    the units as audio time (at `rate` units a second) and the time left. Shown only when the
    stream is a terminal and `enabled`; redrawn at most 10 times a second."""

    def __init__(self, total: int, label: str, rate: float | None = None,
                 stream: TextIO | None = None, enabled: bool = True):
        self.total, self.label, self.rate = max(int(total), 1), label, rate
        self.stream = stream if stream is not None else sys.stderr
        self.shown = enabled and _is_terminal(self.stream)
        self.start = time.monotonic()
        self.last_draw = 0.0
        self.done = 0
        self.note = ""

    def update(self, done: int, note: str | None = None) -> None:
        self.done = min(int(done), self.total)
        if note is not None:
            self.note = note
        now = time.monotonic()
        if self.shown and (now - self.last_draw >= 0.1 or self.done == self.total):
            self.last_draw = now
            self.draw(now)

    def draw(self, now: float) -> None:
        fraction = self.done / self.total
        filled = int(24 * fraction)
        line = f"{self.label} {100 * fraction:3.0f}% [{'#' * filled}{'.' * (24 - filled)}]"
        if self.rate:
            line += f" {clock(self.done / self.rate)} of {clock(self.total / self.rate)}"
        elapsed = now - self.start
        if 0 < fraction < 1 and elapsed > 1.0:
            line += f", {clock(elapsed * (1 - fraction) / fraction)} left"
        if self.note:
            line += f" ({self.note})"
        self.stream.write("\r" + line[:_width()] + "\x1b[K")
        self.stream.flush()

    def clear(self) -> None:
        """Remove the line (before other output, and at the end)."""
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.last_draw = 0.0

    def say(self, text: str) -> None:
        """A line of text on the stream, the bar redrawn below it."""
        self.clear()
        print(text, file=self.stream, flush=True)
        if self.shown:
            self.draw(time.monotonic())


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _width() -> int:
    import shutil
    return max(shutil.get_terminal_size((80, 24)).columns - 1, 20)


class SlowStartNotice:
    """Prints `message` on stderr if the work it brackets (building the pedal and its first
    block, where numba compiles or loads its kernels) has not finished within `after` seconds.
    A timer, not a guess at numba's cache: whatever makes the start slow, the user hears why
    it may be. Use as a context manager, or call `done()` when the first block is out."""

    def __init__(self, message: str = COMPILE_NOTICE, after: float = COMPILE_NOTICE_AFTER,
                 stream: TextIO | None = None):
        self.message, self.stream = message, stream
        self.timer = threading.Timer(after, self._say)
        self.timer.daemon = True
        self.said = False

    def _say(self) -> None:
        self.said = True
        print(self.message, file=self.stream if self.stream is not None else sys.stderr,
              flush=True)

    def start(self) -> "SlowStartNotice":
        self.timer.start()
        return self

    def done(self) -> None:
        self.timer.cancel()
        if self.timer.is_alive():
            self.timer.join()  # no thread left behind (a batch forks its workers next)

    def __enter__(self) -> "SlowStartNotice":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.done()
