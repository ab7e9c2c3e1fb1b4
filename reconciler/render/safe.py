"""Make text safe to print on a terminal: the one sanitizer every output goes through.

A saved plan file, a remote's index and a daemon's image properties are not
ours: their strings may hold escape sequences that would move the cursor,
rewrite earlier lines, set the window title or hide text when printed.

Invariant: :func:`terminal_safe` returns its argument with every control
character (C0 but newline and tab, DEL, C1) and every bidirectional-override
character replaced by its ``\\uXXXX`` spelling.  That spelling is also a JSON
string escape, so a JSON document stays valid and means the same (its own
encoder already escapes C0); text and markdown show the escape instead of
obeying it.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """``text`` with control and bidi-override characters spelled ``\\uXXXX``."""
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
