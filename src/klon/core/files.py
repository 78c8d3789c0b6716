"""Writing files whole or not at all: the one atomic writer every output goes through.

A file is written under a hidden temporary name beside its destination and renamed over it
only when complete, so a reader (or a crash) never sees half a file. The temporary file gets
the permissions a plain open() would give (0o666 less the umask), not mkstemp's 0o600.
"""
import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


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


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `path` to write to (by any library that takes a file name);
    renamed to `path` when the block ends without an error, removed otherwise.

    The temporary name keeps the destination's extension, so writers that pick a format by
    extension (soundfile, matplotlib) pick the right one."""
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")
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
