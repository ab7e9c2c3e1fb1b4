"""A clock for the lease's real-time tests: a fixed start, real elapsed time.

The lease's background renewal and the interrupt tests run in real time (a
thread, signals, real sleeps), so a clock that moves only when someone sleeps
will not do; the wall clock will not either (a record "far in the future" is
in the past one day).  :class:`RunningClock` starts at a fixed instant and
advances with :func:`time.monotonic`, so the dates the lease code sees do not
depend on today's date while the durations are real.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta


class RunningClock:
    """``now()`` is ``start`` plus the real time elapsed since construction;
    ``sleep`` really sleeps.  Satisfies ``reconciler.apply.lease.Clock``."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self._origin = time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self._origin)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
