"""Where klon finds things: the reference data beside the checkout, the shipped model sets,
and the cache folder for compiled kernels."""
import os
from pathlib import Path

from klon.core.errors import KlonError

PACKAGE = Path(__file__).resolve().parents[1]
SHIPPED_MODELS = PACKAGE / "models"


def find_data(data: str | os.PathLike | None = None) -> Path | None:
    """The reference data folder (holding klon-ltspice/DataIn): `data` (a KlonError if it is
    not one: a folder the user names is never swapped for another), else $KLON_DATA, else
    ../shared/data beside the checkout or the working folder; None if there is none."""
    if data:
        if not (Path(data) / "klon-ltspice" / "DataIn").is_dir():
            raise KlonError(f"no klon-ltspice/DataIn folder under {data}")
        return Path(data)
    candidates = [os.environ.get("KLON_DATA"), PACKAGE.parents[1].parent / "shared" / "data",
                  Path.cwd().parent / "shared" / "data"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "klon-ltspice" / "DataIn").is_dir():
            return Path(candidate)
    return None


def shipped_sets() -> list[str]:
    """Names of the model sets installed with klon (folders of klon/models)."""
    if not SHIPPED_MODELS.is_dir():
        return []
    return sorted(p.name for p in SHIPPED_MODELS.iterdir() if p.is_dir() and any(p.glob("*.json")))


def cache_folder() -> Path | None:
    """Compiled kernels' cache: $KLON_CACHE_DIR, else $XDG_CACHE_HOME/klon, else ~/.cache/klon
    (each with kernels/ below); None where it cannot be made or written."""
    folder = os.environ.get("KLON_CACHE_DIR") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "klon"
    folder = Path(folder) / "kernels"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None
