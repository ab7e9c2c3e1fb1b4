"""What a command needs from outside the process, in one value built once per run.

:class:`Services` carries the ways to reach the world: how to connect to a
target's image store, how to open a remote reader, the clock, the environment
and standard input.  The CLI builds it from the real adapters
(:func:`system_services`) and hands it to every command body
(``reconciler.commands``); tests build it from in-memory fakes
(``tests/support/fakes.py``), so nothing is patched into modules.

Invariants:

* ``connect`` and ``reader`` return context managers: whoever opens one closes
  it (``reconciler.pipeline.opened_stores`` for stores, the command for the
  reader).  Nothing is contacted when they are called; the first request is.
* The real adapters are built with the run's network timeouts
  (:func:`reconciler.timeouts.current`), read when ``connect``/``reader`` is
  called, that is inside the command (the CLI sets them around it), in the
  command's own thread.
* ``clock`` is the only "now" of a plan (a saved plan's ``created_at`` and the
  expiry arithmetic); nothing in the pipeline reads the wall clock itself.
* This module imports no network code: the adapters are imported when first
  built, so ``--help`` and ``--version`` stay cheap.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, TextIO

from reconciler import timeouts
from reconciler.model.config import TargetSpec
from reconciler.ports import ImageStore, RemoteReader


class Connect(Protocol):
    """Open the image store of one target (closed by leaving the context manager).

    ``operation_timeout`` (seconds) bounds the wait for each daemon operation;
    None means the adapter's default.
    """

    def __call__(self, target: TargetSpec, *, operation_timeout: float | None = None
                 ) -> AbstractContextManager[ImageStore]: ...


@dataclass(frozen=True)
class Services:
    """The collaborators of every command (see the module docstring)."""

    connect: Connect
    reader: Callable[[], AbstractContextManager[RemoteReader]]
    clock: Callable[[], datetime]
    """The current time, timezone-aware."""
    environ: Mapping[str, str]
    """``${VAR}`` references, the local socket, ``GITHUB_STEP_SUMMARY``."""
    stdin: TextIO | None
    """Where a confirmation is read from (None: there is no standard input)."""


def incus_store(target: TargetSpec, *, operation_timeout: float | None = None
                ) -> AbstractContextManager[ImageStore]:
    """The Incus REST adapter for ``target``, with this run's timeouts;
    ``operation_timeout`` (seconds) overrides its default."""
    from reconciler.adapters.incus import OPERATION_TIMEOUT, connect

    return connect(target, timeouts.current(),
                   operation_timeout=operation_timeout or OPERATION_TIMEOUT)


def http_reader() -> AbstractContextManager[RemoteReader]:
    """The HTTP remote reader, with this run's timeouts."""
    from reconciler.adapters.remotes.reader import HttpRemoteReader

    limits = timeouts.current()
    return HttpRemoteReader(connect_timeout=limits.connect, read_timeout=limits.read)


def wall_clock() -> datetime:
    return datetime.now(UTC)


def system_services() -> Services:
    """The real world: Incus daemons, HTTP remotes, the wall clock, ``os.environ``, stdin."""
    return Services(connect=incus_store, reader=http_reader, clock=wall_clock,
                    environ=os.environ, stdin=sys.stdin)
