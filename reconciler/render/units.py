"""Human units for byte counts and the short forms of long identifiers.

Pure and total: every function accepts any value of its argument type and never
raises.  Sizes use decimal (SI) units, as image servers and ``df -H`` do:
1 kB = 1000 B.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from reconciler.model.fingerprint import short_fingerprint
from reconciler.model.times import rfc3339

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")
# Kept importable from here for older callers; the model owns them now.
short = short_fingerprint


def human_bytes(size: int) -> str:
    """``123456789`` -> ``"123.5 MB"``; bytes below 1 kB are whole (``"512 B"``)."""
    if size < 1000:
        return f"{size} B"
    value = float(size)
    unit = 0
    while value >= 999.95 and unit < len(_UNITS) - 1:
        value /= 1000
        unit += 1
    return f"{value:.1f} {_UNITS[unit]}"


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """``plural(1, "image")`` -> ``"1 image"``; ``plural(2, "image")`` -> ``"2 images"``."""
    word = singular if count == 1 else (plural_form or singular + "s")
    return f"{count} {word}"


def value(v: Any) -> str:
    """A field value for people: ``true``, ``[default, web]``, ``(none)``, ``"two words"``.

    Strings are quoted only when they would be ambiguous (empty, spaces, commas,
    brackets).  Datetimes are RFC 3339 in UTC with a ``Z``.
    """
    if v is None:
        return "(none)"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, datetime):
        return rfc3339(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {value(x)}" for k, x in v.items()) + "}"
    text = str(v)
    if text == "" or any(c.isspace() or c in ',[]{}"#' for c in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text
