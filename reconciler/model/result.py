"""What ``apply`` did: one outcome per planned change, in the order performed."""

from __future__ import annotations

from enum import StrEnum

from reconciler.model.base import Frozen
from reconciler.model.plan import Change


class Status(StrEnum):
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    """Not attempted: an earlier change of the same target failed, apply was
    interrupted, or it was refused (``Outcome.refused``)."""


class Outcome(Frozen):
    change: Change
    status: Status
    message: str = ""
    via: str | None = None
    """How a download landed: ``pull`` or ``upload`` (the contract's ``"via"``)."""
    fingerprint: str | None = None
    """The fingerprint that really landed, for downloads."""
    refused: bool | None = None
    """True: skipped on purpose (``message`` says why: a degraded cluster), and apply
    fails; None otherwise (left out of the JSON)."""


class ApplyResult(Frozen):
    outcomes: tuple[Outcome, ...] = ()

    @property
    def failed(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.status is Status.FAILED)

    @property
    def refused(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.refused)

    @property
    def ok(self) -> bool:
        """Every change done, or skipped only because another failed or was interrupted."""
        return not self.failed and not self.refused
