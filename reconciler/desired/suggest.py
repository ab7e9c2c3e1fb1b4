"""The "did you mean" hint of an unknown-key message."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from reconciler.desired.shown import shown

MIN_PREFIX = 3
"""A typed prefix this long of exactly one known key suggests it (``desc`` -> ``description``)."""


def did_you_mean(key: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` naming the known key closest to ``key``, or "".

    Closest: the one known key that ``key`` begins (at least :data:`MIN_PREFIX`
    characters), else difflib's best match at its default cutoff (0.6)."""
    names = sorted(set(known) - {key})
    starting = [n for n in names if len(key) >= MIN_PREFIX and n.startswith(key)]
    close = starting if len(starting) == 1 else difflib.get_close_matches(key, names, n=1)
    return f" (did you mean {shown(close[0])}?)" if close else ""
