"""Progress reporting during ``apply``: what runs now, and how each change ended.

``apply`` receives a :class:`Reporter` and calls it; it never prints itself.
Reporters write to the stream they are given (the CLI passes stderr, so stdout
keeps only the plan and the result) and never raise on their own account.
``apply`` runs targets concurrently, so every reporter here is thread-safe: each
call holds the reporter's lock while it updates state and writes.

Calls apply makes, per change: ``progress(...)`` any number of times (the first
call marks the change's start), then exactly one ``done(outcome)``; changes left
out because of an interrupt get no call (the interrupt's line says where apply
stopped).  ``note``
is for target-level remarks ("connected", "inventory saved").
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TextIO

from reconciler.model.fingerprint import short_fingerprint
from reconciler.model.plan import Change
from reconciler.model.result import Outcome, Status
from reconciler.redact import scrub

THROTTLE_SECONDS = 5.0
MILESTONES = (25, 50, 75, 100)
_PERCENT = re.compile(r"(\d{1,3}(?:\.\d+)?)\s?%")


class Reporter(Protocol):
    """What ``apply`` tells the person watching.  ``text`` is one line, for people."""

    def progress(self, target: str, change: Change, text: str) -> None: ...

    def done(self, outcome: Outcome) -> None: ...

    def note(self, target: str, text: str) -> None: ...


class SilentReporter:
    """A reporter that says nothing (tests, and JSON output)."""

    def progress(self, target: str, change: Change, text: str) -> None:
        pass

    def done(self, outcome: Outcome) -> None:
        pass

    def note(self, target: str, text: str) -> None:
        pass


ChangeKey = tuple[str, tuple[int, str, str, str]]


def change_key(target: str, change: Change) -> ChangeKey:
    """Identifies a running change (changes hold dicts, so they are not hashable)."""
    return target, change.sort_key()


def change_label(change: Change) -> str:
    """``image.download images:debian/12 4f3a2b1c9d8e``: action, subject, short fingerprint."""
    subject = change.alias or change.source or ", ".join(change.fields or {})
    fp = change.to if change.action.value.startswith("alias.") else change.fingerprint
    fp = fp or change.fingerprint or change.from_
    parts = [change.action.value, subject, short_fingerprint(fp, missing="")]
    return " ".join(p for p in parts if p)


def outcome_label(outcome: Outcome) -> str:
    """``done``, ``done (via upload)``, ``FAILED: message``, ``skipped``."""
    if outcome.status is Status.DONE:
        return "done" + (f" (via {outcome.via})" if outcome.via else "")
    if outcome.status is Status.FAILED:
        return "FAILED" + (f": {outcome.message}" if outcome.message else "")
    return "skipped" + (f" ({outcome.message})" if outcome.message else "")


def percent_in(text: str) -> float | None:
    """The first ``NN%`` or ``NN.N%`` in ``text``, else None."""
    match = _PERCENT.search(text)
    return float(match.group(1)) if match else None


def _one_line(text: str) -> str:
    """``text`` (a daemon's or an error's words) on one line, safe for a terminal."""
    return " ".join(_safe(text).split())


def _safe(text: str) -> str:
    # Imported here: the render package imports this module (outcome_label).
    from reconciler.render.safe import terminal_safe

    return terminal_safe(scrub(text))


@dataclass
class _Seen:
    last_at: float
    milestone: int


class PlainReporter:
    """Plain lines, one per event worth a line: for CI logs and pipes.

    Invariants: each change's first ``progress`` and its ``done`` always print; a
    later ``progress`` line prints only when ``interval`` seconds have passed
    since that change's last printed line, or when its percentage crosses a new
    milestone (25/50/75/100).  ``note`` always prints.
    """

    def __init__(
        self, stream: TextIO, *, clock: Callable[[], float] = time.monotonic,
        interval: float = THROTTLE_SECONDS,
    ) -> None:
        self._stream = stream
        self._clock = clock
        self._interval = interval
        self._seen: dict[ChangeKey, _Seen] = {}
        self._lock = threading.Lock()

    def _line(self, text: str) -> None:
        self._stream.write(_safe(text) + "\n")
        self._stream.flush()

    def progress(self, target: str, change: Change, text: str) -> None:
        with self._lock:
            self._progress(target, change, text)

    def _progress(self, target: str, change: Change, text: str) -> None:
        key = change_key(target, change)
        now = self._clock()
        pct = percent_in(text)
        reached = max((m for m in MILESTONES if pct is not None and pct >= m), default=0)
        seen = self._seen.get(key)
        if seen is None:
            self._seen[key] = _Seen(last_at=now, milestone=reached)
            self._line(f"{target}: {change_label(change)}: {_one_line(text)}")
            return
        if reached > seen.milestone or now - seen.last_at >= self._interval:
            seen.last_at = now
            seen.milestone = max(seen.milestone, reached)
            self._line(f"{target}: {change_label(change)}: {_one_line(text)}")

    def done(self, outcome: Outcome) -> None:
        change = outcome.change
        with self._lock:
            self._seen.pop(change_key(change.target, change), None)
            self._line(f"{change.target}: {change_label(change)}: {outcome_label(outcome)}")

    def note(self, target: str, text: str) -> None:
        with self._lock:
            self._line(f"{target}: {_one_line(text)}")


class TtyReporter:
    """One status line, rewritten in place with ``\\r``, for a person at a terminal.

    The status line shows every running change (``target: label: text``, joined
    by `` | ``), cut to the terminal width.  Finished changes and notes are
    printed as permanent lines above it; the status line is then redrawn.
    """

    def __init__(self, stream: TextIO, *, width: Callable[[], int] | None = None) -> None:
        self._stream = stream
        self._width = width or (lambda: shutil.get_terminal_size((80, 24)).columns)
        self._running: dict[ChangeKey, str] = {}
        self._drawn = 0
        self._lock = threading.Lock()

    def _clear(self) -> None:
        if self._drawn:
            self._stream.write("\r" + " " * self._drawn + "\r")
            self._drawn = 0

    def _draw(self) -> None:
        self._clear()
        if self._running:
            status = " | ".join(self._running.values())
            limit = max(self._width() - 1, 10)
            if len(status) > limit:
                status = status[: limit - 3] + "..."
            self._stream.write(status)
            self._drawn = len(status)
        self._stream.flush()

    def _permanent(self, text: str) -> None:
        self._clear()
        self._stream.write(_safe(text) + "\n")
        self._draw()

    def progress(self, target: str, change: Change, text: str) -> None:
        key = change_key(target, change)
        with self._lock:
            self._running[key] = f"{target}: {change_label(change)}: {_one_line(text)}"
            self._draw()

    def done(self, outcome: Outcome) -> None:
        change = outcome.change
        with self._lock:
            self._running.pop(change_key(change.target, change), None)
            self._permanent(f"{change.target}: {change_label(change)}: {outcome_label(outcome)}")

    def note(self, target: str, text: str) -> None:
        with self._lock:
            self._permanent(f"{target}: {_one_line(text)}")


def make_reporter(stream: TextIO) -> Reporter:
    """A :class:`TtyReporter` when ``stream`` is a terminal, else a :class:`PlainReporter`."""
    isatty = getattr(stream, "isatty", None)
    try:
        tty = bool(isatty()) if callable(isatty) else False
    except (OSError, ValueError):
        tty = False
    return TtyReporter(stream) if tty else PlainReporter(stream)
