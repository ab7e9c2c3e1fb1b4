"""Colour on a terminal, and only there: the one place that decides and paints.

:func:`wanted` decides for one stream; :func:`paint` colours
a text plan or an apply result that was already made terminal-safe
(``render.safe``), so the only escape sequences in the output are ours.

Invariants:

* Colour is off when ``--no-color`` was given (:func:`disabled`), when
  ``NO_COLOR`` is set to anything non-empty (https://no-color.org), when ``TERM``
  is ``dumb``, and when the stream is not a terminal.  Files, JSON, markdown,
  saved plans and ``GITHUB_STEP_SUMMARY`` are never painted: only the text
  renderers' output, on its way to a terminal, goes through here.
* Painting changes no character of the text: removing the SGR sequences gives
  back the input exactly.
* ``+`` (brings in) is green, ``~`` (changes in place) yellow, ``-`` (removes)
  red, the action name in the marker's colour; warnings (``!``) are yellow.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, TextIO

from reconciler.model.plan import Action

if TYPE_CHECKING:
    from rich.text import Text

_OFF: ContextVar[bool] = ContextVar("incus_images_no_color", default=False)

MARKER_STYLES = {"+": "green", "~": "yellow", "-": "red"}
OUTCOME_STYLES = {"done": "green", "FAILED": "red", "skipped": "yellow"}
WARNING_STYLE = "yellow"

_ACTIONS = "|".join(re.escape(a.value) for a in Action)
_CHANGE = re.compile(rf"^(\s*)([+~-]) ({_ACTIONS})\b")
_WARNING = re.compile(r"^(\s*)(! .*)$")
_RESULT = re.compile(r"^(Apply complete|Apply failed)(?=:)|^(\s+)(failed|skipped):")


@contextmanager
def disabled(off: bool = True) -> Iterator[None]:
    """Colour is off for the block when ``off`` (the CLI's ``--no-color``)."""
    token = _OFF.set(off or _OFF.get())
    try:
        yield
    finally:
        _OFF.reset(token)


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (a stream that cannot say is not)."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (OSError, ValueError):
        return False


def allowed(environ: Mapping[str, str]) -> bool:
    """Whether the run allows colour at all: no ``--no-color``, ``NO_COLOR`` empty or
    unset, ``TERM`` not ``dumb``."""
    return not (_OFF.get() or environ.get("NO_COLOR") or environ.get("TERM") == "dumb")


def wanted(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """Whether to colour what is written to ``stream`` (see the module's invariants)."""
    return allowed(environ) and is_terminal(stream)


def _ansi(text: Text) -> str:
    """``text`` as SGR-coloured characters (the 8 standard colours; no wrapping)."""
    from rich.console import Console  # only when painting: rich costs start-up time

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, color_system="standard", no_color=False,
                      width=max(len(text.plain), 1) + 1, soft_wrap=True, highlight=False,
                      markup=False, emoji=False, legacy_windows=False)
    console.print(text, end="")
    return out.getvalue()


def _paint_line(line: str) -> str:
    from rich.text import Text

    text = Text(line)
    change = _CHANGE.match(line)
    warning = _WARNING.match(line)
    result = _RESULT.match(line)
    if change:
        text.stylize(MARKER_STYLES[change.group(2)], change.start(2), change.end(3))
    elif warning:
        text.stylize(WARNING_STYLE, warning.start(2), warning.end(2))
    elif result and result.group(1):
        style = "green" if result.group(1) == "Apply complete" else "red"
        text.stylize(f"bold {style}", 0, result.end(1))
    elif result:
        word = result.group(3)
        text.stylize(OUTCOME_STYLES["FAILED" if word == "failed" else word],
                     result.start(3), result.end(3))
    else:
        return line
    return _ansi(text)


def paint(text: str) -> str:
    """A text plan or apply result, coloured line by line (see the module's invariants)."""
    return "\n".join(_paint_line(line) for line in text.split("\n"))
