"""Live progress bars for a person at a terminal (:class:`TtyReporter`).

Apart from :mod:`reconciler.render.progress` because it needs ``rich``, whose
import costs every start-up some 30 ms: it is imported only when stderr is a
terminal that takes colour (:func:`reconciler.render.progress.make_reporter`).
"""

from __future__ import annotations

import math
import threading
import time
from typing import TextIO

from rich import filesize
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Column
from rich.text import Text

from reconciler.model.plan import Change
from reconciler.model.result import Outcome, Status
from reconciler.render.labels import change_label, name_of, outcome_label
from reconciler.render.progress import ChangeKey, Clock, _one_line, change_key
from reconciler.render.readings import Reading, read
from reconciler.render.units import elapsed


def _stage(reading: Reading, change: Change) -> str:
    """The words beside a bar: the stage (``rootfs``), or the percentage when the bar
    cannot show it (no size)."""
    stage = _one_line(reading.stage or "")[:24]
    if reading.percent is not None and not change.size:
        stage = f"{stage} {reading.percent:.0f}%".strip()
    return stage


def _daemon_speed(task: Task) -> float | None:
    speed = task.fields.get("speed")
    return float(speed) if isinstance(speed, int | float) and speed > 0 else None


class _Speed(TransferSpeedColumn):
    """Bytes/s: the daemon's own measure when its text gives one (it updates its
    percentage only every few percent, too seldom for rich's estimate), else rich's."""

    def render(self, task: Task) -> Text:
        speed = _daemon_speed(task)
        if speed is None:
            return super().render(task)
        return Text(f"{filesize.decimal(int(speed))}/s", style="progress.data.speed")


class _Eta(TimeRemainingColumn):
    """Time left, from the daemon's speed when it gives one, else rich's estimate."""

    def render(self, task: Task) -> Text:
        speed = _daemon_speed(task)
        if speed is None or task.total is None or task.finished:
            return super().render(task)
        left = math.ceil(max(task.total - task.completed, 0) / speed)
        minutes, seconds = divmod(left, 60)
        hours, minutes = divmod(minutes, 60)
        return Text(f"{hours}:{minutes:02d}:{seconds:02d}", style="progress.remaining")


_OUTCOME_STYLE = {Status.DONE: "green", Status.FAILED: "red", Status.SKIPPED: "yellow"}


class TtyReporter:
    """Live ``rich`` bars for a person at a terminal, one per running download.

    Invariants: a change gets a bar at its first ``progress`` (its total is the
    plan's ``size``; without one the bar only counts); its ``done`` removes the bar
    and prints one permanent line above the bars, ``local: image.download
    images:debian/12 4f3a2b1c9d8e: done (via pull) [7s]`` with the outcome in its
    colour.  Text from daemons and errors goes through :func:`_one_line` and is
    never read as markup.  :meth:`close` stops the live display and leaves only
    the permanent lines on the screen.
    """

    def __init__(self, stream: TextIO, *, clock: Clock = time.monotonic,
                 width: int | None = None) -> None:
        self._clock = clock
        self._console = Console(file=stream, force_terminal=True, highlight=False, markup=False,
                                emoji=False, width=width, legacy_windows=False, soft_wrap=False)
        self._bars = Progress(
            TextColumn("{task.description}", markup=False,
                       table_column=Column(no_wrap=True, ratio=1, overflow="ellipsis")),
            TextColumn("{task.fields[stage]}", style="dim", markup=False),
            BarColumn(bar_width=24),
            TaskProgressColumn(),
            DownloadColumn(),
            _Speed(),
            _Eta(),
            console=self._console, transient=True, get_time=clock, expand=True,
            redirect_stdout=False,  # stdout is the plan and the result: never the bars
        )
        self._tasks: dict[ChangeKey, TaskID] = {}
        self._started: dict[ChangeKey, float] = {}
        self._lock = threading.Lock()
        self._live = False

    def close(self) -> None:
        """Stop the live display (idempotent)."""
        with self._lock:
            if self._live:
                self._bars.stop()
                self._live = False

    def start(self, target: str, change: Change) -> None:
        with self._lock:
            self._started[change_key(target, change)] = self._clock()

    def progress(self, target: str, change: Change, text: str) -> None:
        key = change_key(target, change)
        reading = read(text, change.size)
        with self._lock:
            self._started.setdefault(key, self._clock())
            task = self._tasks.get(key)
            if task is None:
                if not self._live:
                    self._bars.start()
                    self._live = True
                task = self._bars.add_task(_one_line(f"{target}: {name_of(change)}"),
                                           total=change.size, stage="", speed=None)
                self._tasks[key] = task
            self._bars.update(task, completed=reading.done_bytes, stage=_stage(reading, change),
                              speed=reading.speed)

    def done(self, outcome: Outcome) -> None:
        change = outcome.change
        key = change_key(change.target, change)
        with self._lock:
            task = self._tasks.pop(key, None)
            if task is not None:
                self._bars.remove_task(task)
            started = self._started.pop(key, None)
            line = Text(f"{change.target}: {change_label(change)}: ")
            line.append(_one_line(outcome_label(outcome)), style=_OUTCOME_STYLE[outcome.status])
            if started is not None:
                line.append(f" [{elapsed(self._clock() - started)}]", style="dim")
            self._print(line)

    def note(self, target: str, text: str) -> None:
        with self._lock:
            self._print(Text(f"{target}: {_one_line(text)}"))

    def _print(self, line: Text) -> None:
        self._console.print(line, soft_wrap=True)
