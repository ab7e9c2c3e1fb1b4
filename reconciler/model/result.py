"""What ``apply`` did: one outcome per planned change, in the order performed."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

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
    """Every change's outcome; ``failed_targets`` are the targets the plan could not
    observe (unreachable, no quorum...), with why: none of their changes was planned."""

    outcomes: tuple[Outcome, ...] = ()
    failed_targets: dict[str, str] = Field(default_factory=dict)

    @property
    def failed(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.status is Status.FAILED)

    @property
    def refused(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.refused)

    @property
    def ok(self) -> bool:
        """Every change done, or skipped only because another failed or was interrupted,
        and every target reached."""
        return not self.failed and not self.refused and not self.failed_targets
