"""The terminal side of `klon live`: keys that move the knobs and switch engines, and a status
line. No curses: the terminal goes into cbreak mode (keys arrive one by one, Ctrl-C still
interrupts) while the stream runs and is put back afterwards. Without a terminal on stdin there
are no keys, and without one on stderr the status comes as a plain line every few seconds.

Everything here runs in the main thread; the audio thread sees only the knob targets it writes.
"""
import os
import select
import sys
import time
from typing import Any

import numpy as np

from klon.live.processor import KNOBS

STEP, FINE_STEP = 0.05, 0.01
QUIT = "quit"
KEYS_HELP = ("keys: g/t/l pick Gain/Treble/Level, up/down or +/- move it 0.05, right/left or "
             "]/[ 0.01, 0-9 set it to 0.0-0.9, e switches engine, q or Ctrl-C quits")
# escape sequences of the arrow keys (normal and application cursor mode)
ARROWS = {"\x1b[A": "up", "\x1b[B": "down", "\x1b[C": "right", "\x1b[D": "left",
          "\x1bOA": "up", "\x1bOB": "down", "\x1bOC": "right", "\x1bOD": "left"}
MOVES = {"up": STEP, "+": STEP, "=": STEP, "down": -STEP, "-": -STEP, "_": -STEP,
         "right": FINE_STEP, "]": FINE_STEP, "left": -FINE_STEP, "[": -FINE_STEP}


def split_keys(text: str) -> list[str]:
    """Keys in a chunk read from the terminal: arrow escape sequences as one key each."""
    keys, i = [], 0
    while i < len(text):
        for sequence, name in ARROWS.items():
            if text.startswith(sequence, i):
                keys.append(name)
                i += len(sequence)
                break
        else:
            keys.append(text[i])
            i += 1
    return keys


class Panel:
    """The knobs as the keys see them: `handle(key)` acts on the processor (set_knob, knob,
    switch_engine, engine, unavailable) and returns a message to show, QUIT, or None."""

    def __init__(self, processor):
        self.processor = processor
        self.selected = "gain"

    def handle(self, key: str) -> str | None:
        p = self.processor
        if key in ("q", "Q"):
            return QUIT
        if key in ("g", "t", "l"):
            self.selected = {"g": "gain", "t": "treble", "l": "level"}[key]
            return None
        if key in MOVES:
            p.set_knob(self.selected, round(p.knob(self.selected) + MOVES[key], 2))
            return None
        if key.isdigit() and len(key) == 1:
            p.set_knob(self.selected, int(key) / 10)
            return None
        if key in ("e", "E"):
            if p.switch_engine():
                return f"switching to the {p.engine} engine"
            return p.unavailable
        if key in ("h", "?"):
            return KEYS_HELP
        return None

    def knobs_text(self) -> str:
        return "  ".join((f"[{name} {self.processor.knob(name):.2f}]" if name == self.selected
                          else f"{name} {self.processor.knob(name):.2f}") for name in KNOBS)


def status_line(panel: Panel, now: dict[str, Any], loads: np.ndarray) -> str:
    """One line: engine, knobs, levels (dB, full scale = 1 V), load (% of the block period:
    mean and max over `loads`, the callbacks since the last line), xruns."""
    load = (f"load {100 * float(np.mean(loads)):3.0f}% max {100 * float(np.max(loads)):3.0f}%"
            if len(loads) else "load   -")
    clipped = f"  CLIPPED {now['clipped']}" if now["clipped"] else ""
    return (f"{panel.processor.engine:7s} {panel.knobs_text()}  in {_db_text(now['in_db'])} "
            f"out {_db_text(now['out_db'])}  {load}  xruns {now['xruns']}{clipped}")


def _db_text(db):
    return f"{db:5.1f} dB" if db is not None and db > -100.0 else " -inf dB"


class Terminal:
    """Keys from stdin (cbreak mode while in use, restored on exit) when it is a terminal;
    `wait_keys(seconds)` sleeps until a key arrives or the time is up (no spinning)."""

    def __init__(self, stdin=None, stream=None):
        self.stdin = sys.stdin if stdin is None else stdin
        self.stream = sys.stderr if stream is None else stream
        self.keys = _isatty(self.stdin)
        self.in_place = _isatty(self.stream)
        self._saved = None

    def __enter__(self):
        if self.keys:
            import termios
            import tty
            fd = self.stdin.fileno()
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)
        return self

    def __exit__(self, *exc):
        if self._saved is not None:
            import termios
            termios.tcsetattr(self.stdin.fileno(), termios.TCSADRAIN, self._saved)
            self._saved = None
        if self.in_place:
            self.stream.write("\n")
            self.stream.flush()

    def wait_keys(self, seconds: float) -> list[str]:
        if not self.keys:
            time.sleep(seconds)
            return []
        fd = self.stdin.fileno()
        ready, _, _ = select.select([fd], [], [], seconds)
        if not ready:
            return []
        data = os.read(fd, 64)
        return split_keys(data.decode("utf-8", "replace")) if data else []

    def show(self, line: str) -> None:
        """The status line: redrawn in place on a terminal, else a line of its own."""
        if self.in_place:
            self.stream.write("\r" + line + "\x1b[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def say(self, message: str) -> None:
        """A message on a line of its own (above the status line on a terminal)."""
        self.stream.write(("\r\x1b[K" if self.in_place else "") + message + "\n")
        self.stream.flush()


def _isatty(f):
    try:
        return f.isatty()
    except (AttributeError, ValueError):
        return False
