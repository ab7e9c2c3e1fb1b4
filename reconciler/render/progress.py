"""Progress reporting during ``apply``: what runs now, and how each change ended.

``apply`` receives a :class:`Reporter` and calls it; it never prints itself.
Reporters write to the stream they are given (the CLI passes stderr, so stdout
keeps only the plan and the result) and never raise on their own account.
``apply`` runs targets, and downloads within a target, concurrently, so every
reporter here is thread-safe (each call holds the reporter's lock while it
updates state and writes) and follows any number of running changes at once,
each keyed by its target and the change itself.

Calls apply makes, per change attempted: ``start`` once, ``progress(...)`` any
number of times, then exactly one ``done(outcome)``; a change skipped after a
failure gets only ``done``; changes left out because of an interrupt get no call
(the interrupt's line says where apply stopped).  ``note`` is for target-level
remarks ("connected", "inventory saved").  Progress texts are turned into
numbers by :mod:`reconciler.render.readings` only.

Two reporters, chosen by :func:`reporting`:

* :class:`~reconciler.render.live.TtyReporter` (stderr is a terminal and colour is
  allowed): a ``rich`` bar per running download (its size from the plan, bytes,
  percentage, bytes/s, ETA), several at once; finished changes and notes as permanent
  lines above.
* :class:`PlainReporter` (a pipe, a file, CI; or ``NO_COLOR``, ``--no-color``,
  ``TERM=dumb``: a live display needs escape sequences): plain throttled lines
  with the time elapsed, a heartbeat at least every ``heartbeat`` seconds while
  a change says nothing, and each change's time on its last line.

Time comes from the ``clock`` passed in (seconds, any origin), never from the
wall clock directly, so tests move it by hand.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TextIO

from reconciler.model.plan import Action, Change
from reconciler.model.result import Outcome
from reconciler.redact import scrub
from reconciler.render import colour
from reconciler.render.labels import change_label as change_label
from reconciler.render.labels import name_of, outcome_label
from reconciler.render.readings import SMALL_STAGES, Reading, read
from reconciler.render.readings import percent_in as percent_in
from reconciler.render.safe import terminal_safe
from reconciler.render.units import elapsed, human_bytes

if TYPE_CHECKING:
    from reconciler.render.live import TtyReporter

THROTTLE_SECONDS = 5.0
HEARTBEAT_SECONDS = 30.0
TICK_SECONDS = 1.0
"""How often the heartbeat thread looks at the clock (real time)."""
MILESTONES = (25, 50, 75, 100)
Clock = Callable[[], float]
"""Seconds from any fixed origin (``time.monotonic``; tests pass their own)."""


class Reporter(Protocol):
    """What ``apply`` tells the person watching.  ``text`` is one line, for people."""

    def start(self, target: str, change: Change) -> None: ...

    def progress(self, target: str, change: Change, text: str) -> None: ...

    def done(self, outcome: Outcome) -> None: ...

    def note(self, target: str, text: str) -> None: ...


class SilentReporter:
    """A reporter that says nothing (tests, and JSON output)."""

    def start(self, target: str, change: Change) -> None:
        pass

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


def _one_line(text: str) -> str:
    """``text`` (a daemon's or an error's words) on one line, safe for a terminal."""
    return " ".join(_safe(text).split())


def _safe(text: str) -> str:
    return terminal_safe(scrub(text))


_DOING: dict[Action, str] = {
    Action.SERVER_UPDATE: "updating the server config of {target}",
    Action.IMAGE_DOWNLOAD: "downloading {name} to {target}",
    Action.IMAGE_ADOPT: "adopting {name} on {target}",
    Action.IMAGE_REFRESH: "refreshing {name} on {target}",
    Action.IMAGE_UPDATE: "updating {name} on {target}",
    Action.ALIAS_CREATE: "creating alias {name} on {target}",
    Action.ALIAS_MOVE: "moving alias {name} on {target}",
    Action.ALIAS_UPDATE: "updating alias {name} on {target}",
    Action.ALIAS_DELETE: "deleting alias {name} from {target}",
    Action.IMAGE_DELETE: "deleting {name} from {target}",
}


def doing(target: str, change: Change) -> str:
    """``downloading images:debian/12 to local``: what a running change is doing."""
    return _DOING[change.action].format(name=name_of(change), target=target)


def _fraction(reading: Reading, size: int | None) -> float | None:
    """How much of the change's image has moved, 0 to 1 (None: unknown)."""
    if reading.done_bytes is not None and size:
        return reading.done_bytes / size
    if reading.percent is not None and reading.stage not in SMALL_STAGES:
        return reading.percent / 100
    return None


# -- plain lines ------------------------------------------------------------------------------

@dataclass
class _Running:
    target: str
    change: Change
    started_at: float
    last_line_at: float
    milestone: int = 0
    spoke: bool = False
    """Whether a progress line was printed for it yet."""


class PlainReporter:
    """Plain lines, one per event worth a line: for CI logs, pipes and colourless terminals.

    Invariants: a change's first ``progress`` line and its ``done`` line always
    print; a later ``progress`` line prints only when ``interval`` seconds have
    passed since that change's last printed line, or when its share of the image
    crosses a new milestone (25/50/75/100 %).  :meth:`tick` prints ``still
    downloading images:debian/12 to local... [30s elapsed]`` for each running
    change that printed nothing for ``heartbeat`` seconds (:func:`reporting` calls
    it every second from a thread).  Progress lines end with ``[Ns elapsed]``,
    ``done`` lines of started changes with the change's time, ``[7s]``.  ``note``
    always prints.
    """

    def __init__(
        self, stream: TextIO, *, clock: Clock = time.monotonic,
        interval: float = THROTTLE_SECONDS, heartbeat: float = HEARTBEAT_SECONDS,
    ) -> None:
        self._stream = stream
        self._clock = clock
        self._interval = interval
        self._heartbeat = heartbeat
        self._running: dict[ChangeKey, _Running] = {}
        self._lock = threading.Lock()

    def _line(self, text: str) -> None:
        self._stream.write(_safe(text) + "\n")
        self._stream.flush()

    def start(self, target: str, change: Change) -> None:
        with self._lock:
            now = self._clock()
            self._running[change_key(target, change)] = _Running(target, change, now, now)

    def progress(self, target: str, change: Change, text: str) -> None:
        with self._lock:
            self._progress(target, change, text)

    def _progress(self, target: str, change: Change, text: str) -> None:
        now = self._clock()
        key = change_key(target, change)
        run = self._running.setdefault(key, _Running(target, change, now, now))
        reading = read(text, change.size)
        fraction = _fraction(reading, change.size)
        reached = max((m for m in MILESTONES if fraction is not None and fraction * 100 >= m),
                      default=0)
        if run.spoke and reached <= run.milestone and now - run.last_line_at < self._interval:
            return
        run.spoke, run.last_line_at = True, now
        run.milestone = max(run.milestone, reached)
        line = f"{target}: {change_label(change)}: {_one_line(text)}"
        if reading.done_bytes is not None and change.size and reading.percent is None:
            line += f" ({human_bytes(reading.done_bytes)} of {human_bytes(change.size)})"
        self._line(f"{line} [{elapsed(now - run.started_at)} elapsed]")

    def tick(self) -> None:
        """The heartbeat: one line for each running change silent for ``heartbeat`` s."""
        with self._lock:
            now = self._clock()
            for run in self._running.values():
                if now - run.last_line_at >= self._heartbeat:
                    run.last_line_at = now
                    self._line(f"still {doing(run.target, run.change)}... "
                               f"[{elapsed(now - run.started_at)} elapsed]")

    def done(self, outcome: Outcome) -> None:
        change = outcome.change
        with self._lock:
            run = self._running.pop(change_key(change.target, change), None)
            took = f" [{elapsed(self._clock() - run.started_at)}]" if run else ""
            self._line(f"{change.target}: {change_label(change)}: "
                       f"{_one_line(outcome_label(outcome))}{took}")

    def note(self, target: str, text: str) -> None:
        with self._lock:
            self._line(f"{target}: {_one_line(text)}")


# -- choosing -------------------------------------------------------------------------------

def make_reporter(stream: TextIO, *, environ: Mapping[str, str] | None = None,
                  clock: Clock = time.monotonic) -> PlainReporter | TtyReporter:
    """A :class:`~reconciler.render.live.TtyReporter` when ``stream`` is a terminal and
    colour is allowed (:func:`reconciler.render.colour.wanted`), else a
    :class:`PlainReporter`."""
    if colour.wanted(stream, environ if environ is not None else {}):
        from reconciler.render.live import TtyReporter

        return TtyReporter(stream, clock=clock)
    return PlainReporter(stream, clock=clock)


@contextmanager
def reporting(stream: TextIO, *, environ: Mapping[str, str], clock: Clock = time.monotonic,
              tick: float = TICK_SECONDS) -> Iterator[Reporter]:
    """The reporter for ``stream`` (:func:`make_reporter`), live for the block: the
    heartbeat thread of a plain reporter, the bars of a terminal's; both stopped at
    the end, before anything else is printed."""
    reporter = make_reporter(stream, environ=environ, clock=clock)
    if not isinstance(reporter, PlainReporter):
        try:
            yield reporter
        finally:
            reporter.close()
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(tick):
            reporter.tick()

    thread = threading.Thread(target=beat, name="incus-images-heartbeat", daemon=True)
    thread.start()
    try:
        yield reporter
    finally:
        stop.set()
        thread.join()
