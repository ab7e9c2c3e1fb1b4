"""The one error tree of incus-images.

Every expected failure is an :class:`IncusImagesError`; the CLI maps it to exit
status 1 in one place (``reconciler.cli``).  Anything else that escapes is a bug
and exits 3.  Messages are one line, name the stage and the thing concerned
(remote, target, alias, fingerprint) and never carry key material; the errors
that word what a remote or a daemon answered never carry a URL's ``user:password@``
either (:func:`reconciler.redact.scrub`).
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

from reconciler.redact import scrub


class IncusImagesError(Exception):
    """Base of every expected failure."""

    exit_code = 1


@dataclass(frozen=True)
class Diagnostic:
    """One problem in the desired-state file, reported as ``FILE:LINE:COLUMN: message``.

    ``line`` and ``column`` are 1-based.
    """

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class ValidationFailed(IncusImagesError):
    """The desired-state file is invalid; ``diagnostics`` lists every problem at once."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = sorted(diagnostics, key=lambda d: (d.file, d.line, d.column, d.message))
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class RemoteError(IncusImagesError):
    """A remote image server could not be read (unreachable, TLS, garbage, missing alias)."""

    def __init__(self, remote: str, message: str) -> None:
        self.remote = remote
        super().__init__(f"remote {remote!r}: {scrub(message)}")


class StoreError(IncusImagesError):
    """A target image store refused or failed a request."""

    def __init__(self, target: str, message: str, *, status: int | None = None) -> None:
        self.target = target
        self.status = status
        super().__init__(f"target {target!r}: {scrub(message)}")


class NotFound(StoreError):
    """The daemon answered 404."""


class NoQuorum(StoreError):
    """A clustered target could not list its members: no write may be sent to it."""


class PreconditionFailed(StoreError):
    """The daemon answered 412: the ETag sent with ``If-Match`` no longer matches."""


class AlreadyExists(StoreError):
    """The daemon answered 409."""


class UntrustedClient(StoreError):
    """``GET /1.0`` did not say ``auth: trusted`` (or the client is project-restricted)."""


class OperationFailed(StoreError):
    """A background operation of the daemon ended in failure."""


class SyncFailed(OperationFailed):
    """An import or pull ended in "Failed syncing image between servers": the image
    landed on the importing cluster member only, without the aliases asked for.

    Never a reason to upload instead: the record it left is settled by a later run
    once every member is up.
    """


class OperationAbandoned(StoreError):
    """The tool stopped waiting for a daemon operation that had not ended.

    ``cancelled`` is True when the daemon confirmed that the operation ended
    without its result (it was cancelled, or failed); False when its outcome is
    unknown, so what it was doing may still land.
    """

    def __init__(self, target: str, message: str, *, cancelled: bool) -> None:
        self.cancelled = cancelled
        super().__init__(target, message)


class PlanError(IncusImagesError):
    """The desired state cannot be planned (conflicts, missing builds, empty-file guard)."""


class ConflictError(PlanError):
    """An alias, image or server key is held by somebody else."""


class EmptyFileRefused(PlanError):
    """The file declares no images while its owner still manages some."""


class ApplyError(IncusImagesError):
    """A change did not land as planned."""


class StalePlan(IncusImagesError):
    """A saved plan no longer matches the stores it was made from."""


class PlanFileError(IncusImagesError):
    """A saved plan file is unreadable, truncated, edited, foreign or does not fit the file."""


class LeaseHeld(IncusImagesError):
    """Another apply holds a target's lease and did not let go within ``--lock-timeout``."""


class LeaseLost(IncusImagesError):
    """This apply's lease on a target was taken over while it ran (it could not renew it)."""


class Refused(IncusImagesError):
    """The tool declined to act (for example ``apply`` without a terminal and without ``--yes``)."""


class ChangesFailed(ApplyError):
    """``apply`` ran, and some changes failed: ``lines`` holds one error line per change."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        count = len(lines)
        super().__init__(f"{count} change{'' if count == 1 else 's'} failed")


class TargetsFailed(IncusImagesError):
    """Some targets could not be observed: their changes were neither planned nor applied
    (the other targets' were).  One line per target."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("\n".join(lines))


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived: the run stops before its next change, releases its
    leases, and exits ``128 + signum`` (130, 143) with one line.

    Deliberately not an :class:`IncusImagesError`, nor even an ``Exception``: no
    ``except IncusImagesError`` or ``except Exception`` on the way out may turn a
    stop into a failure or swallow it.  The layers it passes through fill in what
    the one line says: ``waiting`` (the target whose lease it was waiting for),
    ``progress`` (where apply stopped) and ``leases`` (whether the leases were
    released).
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.waiting = ""
        self.progress = ""
        self.leases = ""
        super().__init__(signum)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def signal_name(self) -> str:
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"

    def __str__(self) -> str:
        """``interrupted (SIGTERM): stopped before ...; lease released``: one line."""
        parts = [p for p in (self.waiting, self.progress, self.leases) if p]
        head = f"interrupted ({self.signal_name})"
        return f"{head}: {'; '.join(parts)}" if parts else head
