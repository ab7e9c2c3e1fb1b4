"""How a value from the desired-state file appears in a message: short, one line.

Invariant: :func:`shown` never returns more than about ``limit * 4 + 40``
characters (``repr`` escapes may widen a character to ``\\xNN``), whatever the
value, so that a hostile file cannot flood stderr with a huge value.  Use it
for every user-written value or key quoted in a message.
"""

from __future__ import annotations

LIMIT = 60
"""Characters of a string value kept in a message; the rest is cut with ``...``."""


def shown(value: object, limit: int = LIMIT) -> str:
    """``repr(value)``, cut to ``limit`` characters with ``...`` and the full length."""
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        return f"{value[:limit]!r}... ({len(value)} characters)"
    if isinstance(value, bool) or value is None:  # as YAML writes them
        return "null" if value is None else str(value).lower()
    try:
        text = repr(value)
    except ValueError:  # an int too large for str() (sys.get_int_max_str_digits)
        return "a number too large to show"
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def clip(text: str, limit: int = 200) -> str:
    """Free text (a parser's own message) cut to ``limit`` characters with ``...``."""
    return text if len(text) <= limit else f"{text[:limit]}..."
