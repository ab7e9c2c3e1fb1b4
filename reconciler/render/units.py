"""Human units for byte counts and the short forms of long identifiers.

Pure and total: every function accepts any value of its argument type and never
raises.  Sizes use decimal (SI) units, as image servers and ``df -H`` do:
1 kB = 1000 B; the unit arithmetic is ``rich.filesize``'s (what the progress
bars show too), with two differences kept for the plan's readers: a size below
1 kB is ``"512 B"``, and a size that rounds up to 1000 of a unit is written in
the next one (``"1.0 GB"``, not ``"1,000.0 MB"``).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from rich import filesize

from reconciler.model.fingerprint import short_fingerprint
from reconciler.model.times import rfc3339

# Kept importable from here for older callers; the model owns them now.
short = short_fingerprint


def human_bytes(size: int) -> str:
    """``123456789`` -> ``"123.5 MB"``; bytes below 1 kB are whole (``"512 B"``)."""
    if size < 1000:
        return f"{size} B"
    text = filesize.decimal(size)
    if text.startswith("1,000.0 "):  # 999.95 or more of a unit: 1.0 of the next one
        text = filesize.decimal(1000 ** math.ceil(math.log(size, 1000)))
    return text


def elapsed(seconds: float) -> str:
    """A duration as Terraform writes it: ``"0s"``, ``"42s"``, ``"1m05s"``, ``"2h03m"``.

    Whole seconds, rounded down; a negative duration (a clock that stepped back) is 0s.
    """
    whole = max(int(seconds), 0)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


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
