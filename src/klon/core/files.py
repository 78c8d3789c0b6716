"""Writing files whole or not at all: the one atomic writer every output goes through.

A file is written under a hidden temporary name beside its destination and renamed over it
only when complete, so a reader (or a crash) never sees half a file. The temporary file gets
the permissions a plain open() would give (0o666 less the umask), not mkstemp's 0o600.

The temporary's name holds the writer's process id (`.out.klon-1234-9f3a01bc.tmp.wav`): a run
killed outright (SIGKILL, a power cut) cannot remove its own, so the next write to the same
destination removes those whose process is gone. SIGTERM is turned into an ordinary exit while
a file is being written, so a terminated run removes its temporary on the way out.
"""
import contextlib
import os
import re
import secrets
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from klon.core.errors import KlonError

TERMINATED = 128 + signal.SIGTERM  # the exit status a shell reports for a run ended by SIGTERM

_terminate_depth = 0  # atomic_path blocks open in the main thread with our SIGTERM handler
_previous_handler = None


def _umask() -> int:
    """The process's umask: read from /proc where Linux shows it, since setting it to read it
    (the portable way) briefly changes it for every thread."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def temporary_name(path: str | os.PathLike, pid: int | None = None) -> Path:
    """A fresh temporary path beside `path`, named for the destination and this process."""
    path = Path(path)
    pid = os.getpid() if pid is None else pid
    return path.with_name(f".{path.stem}.klon-{pid}-{secrets.token_hex(4)}.tmp{path.suffix}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    except OSError:
        return True  # cannot tell: keep its file
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries that runs since killed left for the destination `path` (only
    names this writer makes for that destination, only where that process is gone); returns
    what was removed."""
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.stem)}\.klon-(\d+)-[0-9a-f]{{8}}\.tmp"
                         rf"{re.escape(path.suffix)}")
    removed = []
    try:
        names = os.listdir(path.parent if str(path.parent) else ".")
    except OSError:
        return removed
    for name in names:
        match = pattern.fullmatch(name)
        if not match:
            continue
        pid = int(match.group(1))
        if pid == os.getpid() or _alive(pid):
            continue
        with contextlib.suppress(OSError):
            (path.parent / name).unlink()
            removed.append(path.parent / name)
    return removed


def check_writable(path: str | os.PathLike) -> None:
    """A KlonError unless a file could be written at `path` now: its folder exists, it is not a
    folder, and an existing file there is not read-only (refused even where the user could
    replace it, as root or as the folder's owner can: read-only says "keep this")."""
    name = os.fspath(path)
    if os.path.isdir(name):
        raise KlonError(f"cannot write '{name}': it is a directory")
    directory = os.path.dirname(os.path.abspath(name))
    if not os.path.isdir(directory):
        raise KlonError(f"cannot write '{name}': directory '{directory}' does not exist")
    if os.path.exists(name):
        mode = os.stat(name).st_mode
        if not mode & 0o222 or not os.access(name, os.W_OK):
            raise KlonError(f"cannot write '{name}': it is read-only")


def _terminate(signum, frame):
    raise SystemExit(TERMINATED)


@contextlib.contextmanager
def _exit_on_sigterm() -> Iterator[None]:
    """While a file is written in the main thread, SIGTERM raises SystemExit, so the `finally`
    that removes the temporary runs (the default action ends the process on the spot). A
    handler someone else installed is left alone."""
    global _terminate_depth, _previous_handler
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _terminate_depth == 0:
        current = signal.getsignal(signal.SIGTERM)
        if current not in (signal.SIG_DFL, None):
            yield
            return
        _previous_handler = current
        signal.signal(signal.SIGTERM, _terminate)
    _terminate_depth += 1
    try:
        yield
    finally:
        _terminate_depth -= 1
        if _terminate_depth == 0:
            signal.signal(signal.SIGTERM, _previous_handler)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `path` to write to (by any library that takes a file name);
    renamed to `path` when the block ends without an error, removed otherwise.

    The destination is checked first (check_writable), and the temporary is created empty
    before the block runs, so a folder that refuses files says so before any work is done.
    The temporary name keeps the destination's extension, so writers that pick a format by
    extension (soundfile, matplotlib) pick the right one."""
    path = Path(path)
    check_writable(path)
    remove_stale_temporaries(path)
    with _exit_on_sigterm():
        temporary = temporary_name(path)
        try:
            os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except OSError as error:
            raise KlonError(f"cannot write '{path}': {(error.strerror or str(error)).lower()}") \
                from None
        try:
            yield temporary
            if temporary.exists():
                os.chmod(temporary, 0o666 & ~_umask())
            os.replace(temporary, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()


def atomic_write(path: str | os.PathLike, content: str | bytes) -> Path:
    """Write text (UTF-8) or bytes to `path` atomically; returns the path."""
    with atomic_path(path) as temporary:
        if isinstance(content, bytes):
            temporary.write_bytes(content)
        else:
            temporary.write_text(content, encoding="utf-8")
    return Path(path)


def rewrite_after(path: str | os.PathLike, marker: str, text: str) -> bool:
    """Replace what follows `marker` in a text file with `text`, atomically (how the benchmark
    scripts put their tables into the docs); False, touching nothing, where the file or the
    marker is missing."""
    path = Path(path)
    if not path.exists() or marker not in path.read_text():
        return False
    head = path.read_text().split(marker)[0]
    atomic_write(path, f"{head}{marker}\n\n{text}")
    return True
