"""JSON text from outside the tool (a daemon's answer, a remote's index, a value another
program may have written into the daemon's config) read into Python values.

Invariant: :func:`loads` raises ``ValueError`` and nothing else, whatever the text.
``json``'s decoder recurses once per level of nesting and raises ``RecursionError`` past
the interpreter's limit (about 1,000 levels: a few kilobytes of ``[``); here that is a
:class:`TooDeep`, so every caller's "not JSON" path covers it.
"""

from __future__ import annotations

import json
from typing import Any


class TooDeep(ValueError):
    """The text nests arrays and objects deeper than the decoder can follow."""


def loads(text: str | bytes | bytearray) -> Any:
    """``json.loads(text)``; ``ValueError`` (:class:`TooDeep` for runaway nesting) if not JSON."""
    try:
        return json.loads(text)
    except RecursionError:
        raise TooDeep("nested too deep to read") from None
