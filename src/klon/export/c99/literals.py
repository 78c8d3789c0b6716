"""C99 literals and template filling, shared by the generators of klon.export.c99.

Every number the generated C holds is written here, so the neural pedal, the circuit gain stage
and the WDF derivations spell a value the same way, and a change of spelling changes every file
at once (tests/test_golden.py holds their bytes).
"""
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from klon.core.errors import KlonError

_PLACEHOLDER = re.compile(r"@[A-Z][A-Z0-9_]*@")


def _finite(value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise KlonError(f"{value} has no C literal: the generated C would not compile")
    return value


def c_double(value: float) -> str:
    """A double as the shortest C literal that reads back to the same double (Python's repr)."""
    return repr(_finite(value))


def c_float(value: float) -> str:
    """A value rounded to float32, written with 9 significant digits and an f suffix: the C
    reads back exactly the float the Python engine computes with."""
    text = f"{_finite(np.float32(value)):.9g}"
    if not any(ch in text for ch in ".e"):
        text += ".0"
    return text + "f"


def c_literal(value: float, ctype: str = "double") -> str:
    """The double's literal, for ctype "float" with an f suffix: the C compiler rounds the
    double's value to float, as a cast would (not c_float's float32-first rounding)."""
    return c_double(value) + ("f" if ctype == "float" else "")


def c_initialiser(values: Iterable[float], literal=c_float) -> str:
    """A brace initialiser on one line, each value written by `literal`: {a, b, c}."""
    return "{" + ", ".join(literal(v) for v in values) + "}"


def c_table(name: str, values, ctype: str = "double", per_line: int = 4) -> str:
    """A `static const` array definition, `per_line` c_literal values to a line."""
    literals = [c_literal(v, ctype) for v in values]
    rows = [", ".join(literals[i:i + per_line]) for i in range(0, len(literals), per_line)]
    body = ",\n    ".join(rows)
    return f"static const {ctype} {name}[{len(literals)}] = {{\n    {body}\n}};"


def fill_template(template: Path, fields: Mapping[str, object]) -> str:
    """The template's text with each @KEY@ replaced by str(fields[KEY]); a placeholder left
    unfilled is a KlonError, so a template and its generator cannot drift apart silently."""
    text = Path(template).read_text()
    for key, value in fields.items():
        text = text.replace(f"@{key}@", str(value))
    left = _PLACEHOLDER.search(text)
    if left:
        raise KlonError(f"unfilled placeholder {left.group()} in {Path(template).name}")
    return text
