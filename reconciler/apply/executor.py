"""Carry out a :class:`Plan` through the ports, target by target, concurrently.

Invariants:
- Changes of one target run in plan order; the first failure stops that target
  (later changes are ``skipped``), so an old build and its aliases are never
  removed before their replacement is in place.
- Each action has one handler (:meth:`_TargetRun._handle`), which takes the
  action's typed change (:mod:`reconciler.model.changes`); a change that is not
  one (an action without a handler, a missing field) fails, attempting nothing.
- A download lands exactly the planned fingerprint or fails: when the daemon
  lands another build (its simplestreams cache is up to an hour old) or cannot
  find the planned one, the files are fetched from the remote, checked against
  its index, and uploaded (``via="upload"``); so it is, without asking the
  daemon, when the remote's URL carries credentials (``RemoteSpec.daemon_can_pull``).
  A pull that resolved to an image already in the store has overwritten that
  image's writable fields with the request's (the daemon does so even when the
  operation fails): they are put back.  See :mod:`reconciler.apply.download`.
- Ownership records are written as changes land, so an apply killed at any
  point leaves a store the next plan understands; :mod:`reconciler.apply.records`
  is their one writer.  A pull's in-flight marker
  (``PendingPull``) is cleared only once its outcome is settled: the pull
  returned, failed, or was cancelled as the daemon confirmed.  A pull the tool
  gave up on without that confirmation (``OperationAbandoned``), or one cut short
  by an error, keeps its marker, so what the daemon lands later is this owner's
  and the next plan adopts or deletes it.  A pull that merely takes long is
  waited for: only a pull the daemon failed falls back to an upload.
  An alias enters a record only
  once the tool itself made it point to that image (its ``alias.create`` or
  ``alias.move`` succeeded): until then the image's record leaves it out, so an
  alias someone else made first (by hand, racing the apply) is never taken for
  this owner's.
- Server settings are written with compare-and-swap (:mod:`reconciler.apply.settings`).
- On a clustered target with an unhealthy member, the changes that
  :func:`reconciler.core.cluster.refusals` names are ``skipped`` with its reason
  (``Outcome.refused``: the apply fails) and the others still run; nothing of a
  refused change is attempted.
- After a target's changes, one observation checks that each change really
  landed; a daemon that reported success without doing the work is an error
  (:func:`reconciler.apply.verify.verify`).
- An interrupt (SIGINT, SIGTERM: :class:`~reconciler.errors.Interrupted`, or a
  ``KeyboardInterrupt``) stops every target before its next change: the change
  under way finishes (the daemon would carry on with it anyway) and is recorded,
  the rest are ``skipped`` (not reported one by one), and the interrupt
  propagates, saying where apply stopped (:func:`where_stopped`).  The worker
  threads block those signals, so they always reach the main thread, which
  waits for the workers.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress

from reconciler.apply.download import Download, Landed
from reconciler.apply.records import Records
from reconciler.apply.settings import set_server_keys
from reconciler.apply.verify import verify
from reconciler.core.cluster import refusals
from reconciler.core.inventory import with_inventories
from reconciler.errors import ApplyError, IncusImagesError, Interrupted, NotFound, PlanError
from reconciler.interrupts import threads_without_signals
from reconciler.model.changes import (
    AliasCreate,
    AliasDelete,
    AliasMove,
    AliasUpdate,
    ImageAdopt,
    ImageDelete,
    ImageDownload,
    ImageUpdate,
    ServerUpdate,
    TypedChange,
    typed,
)
from reconciler.model.config import RemoteSpec
from reconciler.model.plan import Change, Plan
from reconciler.model.result import ApplyResult, Outcome, Status
from reconciler.ports import ImageStore, RemoteReader
from reconciler.render.progress import Reporter, SilentReporter, change_label

__all__ = ["INTERRUPTED", "apply_plan", "where_stopped"]

INTERRUPTED = "not attempted: interrupted"


def apply_plan(
    plan: Plan,
    *,
    stores: Mapping[str, ImageStore],
    reader: RemoteReader,
    remotes: Mapping[str, RemoteSpec],
    reporter: Reporter | None = None,
    parallelism: int = 4,
    allow_degraded: bool = False,
) -> ApplyResult:
    """Apply every change of ``plan``; targets run concurrently (at most ``parallelism``
    at once), each in plan order; outcomes are in target order whatever finished first.

    ``allow_degraded`` (``--allow-degraded-cluster``): a clustered target with an
    unhealthy member gets its downloads and deletes all the same."""
    rep = reporter or SilentReporter()
    targets = sorted({c.target for c in plan.changes})
    missing = [t for t in targets if t not in stores]
    if missing:
        raise ApplyError(f"no connection for target(s) {', '.join(missing)}")
    if not targets:
        return ApplyResult()
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(targets))))
    futures: list[Future[list[Outcome]]] = []
    try:
        with threads_without_signals():  # the workers leave SIGINT/SIGTERM to this thread
            for t in targets:
                futures.append(pool.submit(
                    _TargetRun(plan, t, stores[t], reader, remotes, rep, stop,
                               allow_degraded=allow_degraded).run))
        outcomes = [o for f in futures for o in f.result()]
        return ApplyResult(outcomes=tuple(outcomes))
    except BaseException as exc:  # an interrupt: no target starts another change
        stop.set()
        pool.shutdown(wait=True)  # the changes under way finish and are recorded
        if isinstance(exc, Interrupted):
            exc.progress = where_stopped(
                [o for f in futures if f.exception() is None for o in f.result()],
                len(plan.changes))
        raise
    finally:
        pool.shutdown(wait=True)


def where_stopped(outcomes: Sequence[Outcome], planned: int) -> str:
    """Where an interrupted apply stopped, for its one line: ``stopped before image.download
    test:tiny/1.0 4f3a2b1c9d8e on target 'local' (1 of 3 changes made)``."""
    made = sum(1 for o in outcomes if o.status is Status.DONE)
    first: dict[str, Change] = {}
    for o in outcomes:
        if o.status is Status.SKIPPED and o.message == INTERRUPTED:
            first.setdefault(o.change.target, o.change)
    count = f"({made} of {planned} change{'' if planned == 1 else 's'} made)"
    if not first:
        return f"stopped after the last change {count}"
    before = ", ".join(f"{change_label(c)} on target {t!r}" for t, c in sorted(first.items()))
    return f"stopped before {before} {count}"


class _TargetRun:
    """The changes of one target, in plan order, each through its action's handler."""

    def __init__(
        self, plan: Plan, target: str, store: ImageStore, reader: RemoteReader,
        remotes: Mapping[str, RemoteSpec], reporter: Reporter,
        stop: threading.Event | None = None, *, allow_degraded: bool = False,
    ) -> None:
        self.plan = plan
        self.allow_degraded = allow_degraded
        self.refused: dict[int, str] = {}
        """The changes (by index) refused on a degraded cluster, and why."""
        self.stop = stop or threading.Event()
        self.target = target
        self.store = store
        self.reporter = reporter
        self.changes = plan.for_target(target)
        self.typed = [_typed_or_error(c) for c in self.changes]
        """Each change as its action's typed change, or why it is not one (it fails)."""
        project = self.changes[0].project if self.changes else store.project
        self.records = Records(
            store, owner=plan.owner, project=project, planned=plan.ownership.get(target),
            deleting=(t.alias for t in self.typed if isinstance(t, AliasDelete)))
        self.download = Download(target, store, reader, remotes, reporter, self.records)

    def run(self) -> list[Outcome]:
        """Every change's outcome; the first failure or an interrupt skips the rest."""
        try:  # an unreachable target fails every change at once, attempting none
            state = self.store.observe()
        except IncusImagesError as exc:
            return [Outcome(change=c, status=Status.FAILED, message=str(exc))
                    for c in self.changes]
        self.refused = refusals(self.changes, state, allow_degraded=self.allow_degraded)
        outcomes, skipped = self._each_change()
        if not skipped:
            self._close(outcomes)
        return outcomes

    def _each_change(self) -> tuple[list[Outcome], bool]:
        """Run the changes in order: their outcomes, and whether some were skipped."""
        outcomes: list[Outcome] = []
        skip = ""  # why the remaining changes are not attempted
        for change, t in zip(self.changes, self.typed, strict=True):
            if not skip and self.stop.is_set():
                skip = INTERRUPTED
            if skip:
                outcome = Outcome(change=change, status=Status.SKIPPED, message=skip)
            elif (why := self.refused.get(len(outcomes))) is not None:
                outcome = Outcome(change=change, status=Status.SKIPPED, message=why, refused=True)
            else:
                outcome = self._attempt(change, t)
                if outcome.status is Status.FAILED:
                    skip = "not attempted: an earlier change of this target failed"
            if skip != INTERRUPTED:  # the interrupt's one line says where apply stopped
                self.reporter.done(outcome)
            outcomes.append(outcome)
        return outcomes, bool(skip)

    def _attempt(self, c: Change, t: TypedChange | PlanError) -> Outcome:
        """``c`` (typed: ``t``) through its handler; a failure is its outcome, not an
        exception."""
        self.reporter.start(self.target, c)
        try:
            if isinstance(t, PlanError):
                raise t
            landed = self._handle(t)
        except IncusImagesError as exc:
            return Outcome(change=c, status=Status.FAILED, message=str(exc))
        if landed is None:
            return Outcome(change=c, status=Status.DONE)
        return Outcome(change=c, status=Status.DONE, via=landed.via,
                       fingerprint=landed.fingerprint, message=landed.message)

    def _handle(self, t: TypedChange) -> Landed | None:
        """The one handler of ``t``'s action (only a download says how it landed)."""
        match t:
            case ImageDownload():
                return self.download(t)
            case ServerUpdate():
                set_server_keys(self.target, self.store, t.fields)
            case ImageAdopt():
                self.records.remember(t)
            case ImageUpdate():
                self.store.update_image(t.fingerprint, t.writable)
                self.records.remember(t)
            case AliasCreate():
                self.store.create_alias(t.alias, t.to, t.description)
                self.records.made_alias(t.alias, t.to)
            case AliasMove():
                self.store.move_alias(t.alias, t.to)
                self.records.made_alias(t.alias, t.to)
            case AliasUpdate():
                self.store.update_alias(t.alias, t.description)
            case AliasDelete():
                with suppress(NotFound):
                    self.store.delete_alias(t.alias)
                self.records.deleted_alias(t.alias)
            case ImageDelete():
                with suppress(NotFound):
                    self.store.delete_image(t.fingerprint)
                self.records.forget_image(t.fingerprint)
        return None

    def _close(self, outcomes: list[Outcome]) -> None:
        """The closing ownership write and the verification, on one observation; a
        failure of either fails the last change.  With refused changes the plan's
        records are not written (the records written as changes landed stand) and
        only the changes attempted are verified."""
        attempted = [t for i, t in enumerate(self.typed)
                     if not isinstance(t, PlanError) and i not in self.refused]
        try:
            state = with_inventories(self.store.observe())
            if not self.refused:
                self.records.close(state)
            verify(self.target, attempted, state)
        except IncusImagesError as exc:
            at = max((i for i, o in enumerate(outcomes) if not o.refused), default=-1)
            outcomes[at] = outcomes[at].model_copy(
                update={"status": Status.FAILED, "message": str(exc)})


def _typed_or_error(c: Change) -> TypedChange | PlanError:
    try:
        return typed(c)
    except PlanError as exc:
        return exc
