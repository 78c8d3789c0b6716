"""The JSON report of a `klon live` run: settings, counters, load percentiles and levels."""
import json
import math
import os
from typing import Any

from klon.core.errors import KlonError
from klon.core.files import atomic_write
from klon.live.processor import LiveProcessor

FORMAT = "klon-live-report"


def build(processor: LiveProcessor, settings: dict[str, Any], wall_seconds: float,
          stopped_by: str) -> dict[str, Any]:
    """The report of a finished run. `settings`: what was asked for and what the devices gave."""
    counters = processor.counters()
    return _finite({
        "format": FORMAT, "version": 1, "settings": settings,
        "engine_at_end": processor.engine, "engines_running": list(processor.engines),
        "pedal_latency_samples": processor.latency,
        "unavailable": processor.unavailable,
        "knobs_at_end": {name: processor.knob(name) for name in ("gain", "treble", "level")},
        "stopped_by": stopped_by, "wall_seconds": wall_seconds,
        "stream_seconds": counters["callbacks"] * processor.block / processor.sample_rate,
        **counters, "levels": processor.levels()})


def write(path: str | os.PathLike, report: dict[str, Any]) -> None:
    """Write the report atomically (a temporary file beside it, then a rename)."""
    try:
        atomic_write(path, json.dumps(report, indent=2) + "\n")
    except OSError as error:
        raise KlonError(f"cannot write the report '{path}': {error.strerror or error}") from None


def _finite(value):
    """JSON has no infinities or NaN: they become null (e.g. the dB level of silence)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # NumPy scalars
        return _finite(value.item())
    return value
