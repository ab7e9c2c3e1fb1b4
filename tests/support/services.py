"""Fake :class:`reconciler.services.Services` for tests that run whole commands.

:class:`Connections` is a ``Services.connect`` over in-memory stores that records
every connect (target, operation timeout) and every close, so a test can count
them; :class:`Readers` does the same for ``Services.reader``.  :func:`services`
puts them together with a fixed clock, an environment and a standard input.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TextIO

from reconciler.model.config import TargetSpec
from reconciler.ports import ImageStore, RemoteReader
from reconciler.services import Services
from tests.support.builders import NOW


@dataclass
class Connections:
    """Connects a target to ``stores[target.name]``; records connects and closes."""

    stores: Mapping[str, ImageStore]
    connected: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    operation_timeouts: list[float | None] = field(default_factory=list)

    def __call__(self, target: TargetSpec, *, operation_timeout: float | None = None
                 ) -> AbstractContextManager[ImageStore]:
        self.connected.append(target.name)
        self.operation_timeouts.append(operation_timeout)
        return self._open(target.name)

    @contextmanager
    def _open(self, name: str) -> Iterator[ImageStore]:
        try:
            yield self.stores[name]
        finally:
            self.closed.append(name)

    @property
    def still_open(self) -> list[str]:
        """Targets connected more often than closed (sorted, with repeats)."""
        left = list(self.connected)
        for name in self.closed:
            left.remove(name)
        return sorted(left)


@dataclass
class Readers:
    """Opens ``reader`` each time; counts opens and closes."""

    reader: RemoteReader
    opened: int = 0
    closed: int = 0

    def __call__(self) -> AbstractContextManager[RemoteReader]:
        self.opened += 1
        return self._open()

    @contextmanager
    def _open(self) -> Iterator[RemoteReader]:
        try:
            yield self.reader
        finally:
            self.closed += 1


def services(connect: Connections, reader: Readers, *, clock: datetime = NOW,
             environ: Mapping[str, str] | None = None, stdin: TextIO | None = None
             ) -> Services:
    """Services over fakes: ``clock`` is "now"; ``stdin`` defaults to empty, not a terminal."""
    return Services(connect=connect, reader=reader, clock=lambda: clock,
                    environ=dict(environ or {}),
                    stdin=stdin if stdin is not None else io.StringIO(""))
