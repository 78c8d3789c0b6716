"""What a long command tells the user while it works: a one-line progress bar (only on a
terminal) and a notice when the kernels are being compiled (a cold start: 40 s and more)."""
import contextlib
import hashlib
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from klon.core.errors import KlonError
from klon.core.files import atomic_write
from klon.core.paths import cache_folder

COMPILE_NOTICE = "klon: compiling kernels, first run only: ~40 s (large neural models: minutes)"
COMPILE_NOTICE_AFTER = 1.0  # seconds of start before the notice where no stamp can be kept
WARM_AFTER = 15.0  # seconds of start before the notice where the stamp says warm


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


def _stamp(key: tuple) -> Path | None:
    """The file that says kernels for `key` (an engine and its models, say) were built by this
    klon's sources under this numba: named by a hash of the key, the versions and every source
    file's size and time (numba recompiles a kernel when its file changes); None without a
    cache folder."""
    folder = cache_folder()
    if folder is None:
        return None
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha1(repr((key, sys.version, _numba_version())).encode())
    for path in sorted(package.rglob("*.py")):
        with contextlib.suppress(OSError):
            stat = path.stat()
            digest.update(f"{path.relative_to(package)} {stat.st_size} {stat.st_mtime_ns}\n"
                          .encode())
    return folder / f"warm-{digest.hexdigest()[:16]}"


def _numba_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("numba")
    except PackageNotFoundError:
        return "none"


class SlowStartNotice:
    """Says that the kernels are being compiled, around the work that compiles them (building
    the pedal and its first block). Whether they are is known from a stamp file in the cache
    folder, written once a first block with the same sources, numba and `key` has gone
    through: without one the notice comes at once; with one only if the start takes longer
    than WARM_AFTER seconds anyway (numba's cache was cleared, say). Call `start()` before the
    work and `done()` when the first block is out (or use it as a context manager)."""

    def __init__(self, key: tuple = (), message: str = COMPILE_NOTICE,
                 stream: TextIO | None = None):
        self.message, self.stream = message, stream
        self.stamp = _stamp(key)
        self.cold = self.stamp is None or not self.stamp.exists()
        if self.stamp is None:
            after = COMPILE_NOTICE_AFTER
        else:
            after = 0.0 if self.cold else WARM_AFTER
        self.timer = threading.Timer(after, self._say)
        self.timer.daemon = True
        self.said = False
        self.finished = False

    def _say(self) -> None:
        self.said = True
        print(self.message, file=self.stream if self.stream is not None else sys.stderr,
              flush=True)

    def start(self) -> "SlowStartNotice":
        if self.timer.interval <= 0:
            self._say()  # at once, before the wait, not from another thread
        else:
            self.timer.start()
        return self

    def done(self) -> None:
        """The first block is out: no notice from now on, and the stamp is written."""
        self.timer.cancel()
        if self.timer.is_alive():
            self.timer.join()  # no thread left behind (a batch forks its workers next)
        if not self.finished and self.cold and self.stamp is not None:
            with contextlib.suppress(OSError, KlonError):
                atomic_write(self.stamp, "kernels compiled\n")
        self.finished = True

    def stop(self) -> None:
        """The work ended before a first block (an error): no notice, no stamp."""
        self.finished = True
        self.done()

    def __enter__(self) -> "SlowStartNotice":
        return self.start()

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            self.done()
        else:
            self.stop()
