"""Network time limits: how long to wait for a connection, and for each read.

The CLI chooses them once per run (``--connect-timeout``, ``--read-timeout``) and
:func:`using` makes them the run's current limits; the real adapters
(``reconciler.services``) are built with :func:`current`.  This
module imports no network code, so ``--help`` stays cheap.

Invariants:

* Every HTTP request the tool sends, to a remote or to a daemon, carries an explicit
  ``(connect, read)`` pair: nothing waits forever on a stalled peer.
* ``connect`` bounds establishing a connection (TCP or unix socket, and the TLS
  handshake); ``read`` bounds each wait for the next bytes of an answer.  A
  long-polling request (``/wait?timeout=N``) waits ``N + read``.
* A daemon's image list waits :data:`LIST_READS` reads' worth: it comes in one piece.
* A timeout is reported as "timed out after N s ..." naming the option that sets it
  (:data:`CONNECT_OPTION`, :data:`READ_OPTION`).
* The current limits live in a context variable, which worker threads do not
  inherit: adapters are built (and read :func:`current`) in the CLI's thread, and
  keep their limits for their lifetime.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

CONNECT_OPTION = "--connect-timeout"
READ_OPTION = "--read-timeout"
DEFAULT_CONNECT = 10.0
DEFAULT_READ = 30.0
LIST_READS = 10
"""A daemon's image list waits this many read timeouts (300 s by default): Incus 6.0
took 17-20 s to list 4,000 images and 25-50 s for 5,000 on a 2-core machine, and sends
the answer's first byte only at the end (``recursion=0`` takes as long)."""
ANSWER_DEADLINE = 300.0
"""Seconds a daemon's answer may take to arrive whole once it started (its headers came):
a daemon trickling bytes never trips the read timeout, which bounds each wait only."""
INDEX_DEADLINE = 300.0
"""Seconds one index document of a remote may take in all: a server trickling bytes
never trips the read timeout, which bounds each wait only."""


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait to connect, and for each read of an answer (both > 0)."""

    connect: float = DEFAULT_CONNECT
    read: float = DEFAULT_READ

    def __post_init__(self) -> None:
        if not (self.connect > 0 and self.read > 0):
            raise ValueError(f"timeouts must be positive, got {self}")


DEFAULT = Timeouts()
_CURRENT: ContextVar[Timeouts] = ContextVar("incus_images_timeouts", default=DEFAULT)


def current() -> Timeouts:
    """The limits of this run (the defaults unless :func:`using` set others)."""
    return _CURRENT.get()


@contextmanager
def using(timeouts: Timeouts) -> Iterator[Timeouts]:
    """Make ``timeouts`` current for the block (adapters built inside it use them)."""
    token = _CURRENT.set(timeouts)
    try:
        yield timeouts
    finally:
        _CURRENT.reset(token)


def seconds(value: float) -> str:
    """``30 s``, ``2.5 s``: how messages write a duration."""
    return f"{value:g} s"
