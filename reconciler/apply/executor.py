"""Carry out a :class:`Plan` through the ports, target by target, concurrently.

Invariants:
- Changes of one target run in plan order; the first failure stops that target
  (later changes are ``skipped``), so an old build and its aliases are never
  removed before their replacement is in place.  Consecutive downloads (up to
  :data:`WINDOW` of them, never two of one source, whose in-flight markers could
  claim each other's images) are marked in flight together and run a few at once
  (``pulls``, :data:`PULLS_AT_ONCE`): the next starts as soon as one ends, all of
  them finish before the next change starts, and after a failure among them none
  starts and nothing after them runs.  Consecutive ``alias.create`` changes (up to
  :data:`WINDOW`, of distinct names: each points an alias of its own at an image
  already in place) run ``pulls`` at once in the same way; they are recorded with
  the next write (at the latest the closing one).
  Outcomes and notes are reported in plan order whatever order they finish in.
- Each target is observed once, before its first change; apply keeps that
  observation current from what it did (:func:`reconciler.core.applied.fold`), so
  no change looks at the whole store again, and a download reads back only the
  image it landed.
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
- A target whose lease was taken over (``halted`` says why) starts no further
  change: they are ``skipped`` with that reason; the change under way finishes.
- On a clustered target with an unhealthy member, the changes that
  :func:`reconciler.core.cluster.refusals` names are ``skipped`` with its reason
  (``Outcome.refused``: the apply fails) and the others still run; nothing of a
  refused change is attempted.
- After a target's changes, apply checks that each change really landed, on its
  kept state with what it reads back (the landed images, the alias table when an
  alias changed, each deleted image); a daemon that reported success without doing
  the work is an error (:func:`reconciler.apply.verify.verify`).
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
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import suppress

from reconciler import interrupts
from reconciler.apply.download import Download, Landed, Start
from reconciler.apply.records import Records
from reconciler.apply.settings import set_server_keys
from reconciler.apply.verify import verify
from reconciler.core.applied import fold, with_aliases, with_image, without_image
from reconciler.core.cluster import refusals
from reconciler.core.inventory import KnownConfig, with_inventories
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
from reconciler.model.observed import TargetState
from reconciler.model.plan import Change, Plan
from reconciler.model.result import ApplyResult, Outcome, Status
from reconciler.ports import ImageStore, RemoteReader
from reconciler.redact import without_userinfo
from reconciler.render.progress import Reporter, SilentReporter, change_label

__all__ = ["INTERRUPTED", "Halted", "apply_plan", "where_stopped"]

INTERRUPTED = "not attempted: interrupted"
EARLIER_FAILED = "not attempted: an earlier change of this target failed"
PULLS_AT_ONCE = 3
"""How many downloads of one target run at once (more is slower on Incus 6.0)."""
Halted = Callable[[str], str | None]
"""Why target (by name) must start no more changes (its lease was taken over), or None."""
CHECK_SECONDS = 0.2
"""How often the main thread, waiting for the targets, looks for a lost interrupt."""
WINDOW = 32
"""How many consecutive downloads are marked in flight in one write, then run
``PULLS_AT_ONCE`` at a time (each starting as soon as one ends); and how many
consecutive alias creations run together."""


def apply_plan(
    plan: Plan,
    *,
    stores: Mapping[str, ImageStore],
    reader: RemoteReader,
    remotes: Mapping[str, RemoteSpec],
    reporter: Reporter | None = None,
    pulls: int = PULLS_AT_ONCE,
    parallelism: int = 4,
    allow_degraded: bool = False,
    seen: Mapping[str, TargetState] | None = None,
    halted: Halted | None = None,
) -> ApplyResult:
    """Apply every change of ``plan``; targets run concurrently (at most ``parallelism``
    at once), each in plan order (up to ``pulls`` of its downloads at once); outcomes
    are in target order whatever finished first.

    ``allow_degraded`` (``--allow-degraded-cluster``): a clustered target with an
    unhealthy member gets its downloads and deletes all the same.  ``seen``: each
    target's observation the plan was made on (under the leases apply holds); a
    target without one is observed first.  ``halted``: why a target must start no
    more changes (its lease was taken over), or None; asked before each change."""
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
                    _TargetRun(plan, t, stores[t], reader, remotes, rep, stop, pulls,
                               allow_degraded=allow_degraded, seen=(seen or {}).get(t),
                               halted=halted).run))
        waiting = True
        while waiting:
            waiting = bool(wait(futures, timeout=CHECK_SECONDS).not_done)
            interrupts.check()  # a signal whose exception Python dropped
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
        stop: threading.Event | None = None, pulls: int = PULLS_AT_ONCE, *,
        allow_degraded: bool = False, seen: TargetState | None = None,
        halted: Halted | None = None,
    ) -> None:
        self.plan = plan
        self.halted = halted or (lambda _target: None)
        self.seen = seen
        """The observation the plan was made or checked on, if any (None: observe)."""
        self.allow_degraded = allow_degraded
        self.refused: dict[int, str] = {}
        """The changes (by index) refused on a degraded cluster, and why."""
        self.stop = stop or threading.Event()
        self.target = target
        self.store = store
        self.reporter = reporter
        self.pulls = max(1, pulls)
        self.changes = plan.for_target(target)
        self.typed = [_typed_or_error(c) for c in self.changes]
        """Each change as its action's typed change, or why it is not one (it fails)."""
        project = self.changes[0].project if self.changes else store.project
        self.records = Records(
            store, owner=plan.owner, project=project, planned=plan.ownership.get(target),
            deleting=(t.alias for t in self.typed if isinstance(t, AliasDelete)))
        self.download = Download(target, store, reader, remotes, self.records)
        self.claimed = frozenset(t.fingerprint for t in self.typed
                                 if isinstance(t, ImageDownload))
        self.state = TargetState(target=target, project=project, effective_project=project,
                                 host_architecture="")
        """The target as apply knows it: observed once, then kept current by :func:`fold`."""
        self._folding = threading.Lock()
        """Downloads that run at once fold their images into :attr:`state` one at a time."""

    def run(self) -> list[Outcome]:
        """Every change's outcome; the first failure or an interrupt skips the rest."""
        if self.seen is not None:  # its config may have moved since (the lease's renewals):
            observed = self.seen  # the first records write reads it afresh
        else:
            try:  # an unreachable target fails every change at once, attempting none
                observed = self.store.observe()
            except IncusImagesError as exc:
                return [Outcome(change=c, status=Status.FAILED, message=str(exc))
                        for c in self.changes]
            self.records.known = KnownConfig(observed.server_config, observed.config_etag)
        self.state = with_inventories(observed)
        self.refused = refusals(self.changes, observed, allow_degraded=self.allow_degraded)
        outcomes, skipped = self._each_change()
        if skipped:
            with suppress(IncusImagesError):  # what is left is claimed by its markers
                self.records.flush()
        else:
            self._close(outcomes)
        return outcomes

    def _stopping(self) -> str | None:
        """Why this target starts no more changes, or None: apply is stopping (interrupted,
        or Python dropped an interrupt's exception, which the main thread raises at its
        next check), or the target's lease was taken over."""
        if self.stop.is_set() or interrupts.lost() is not None:
            return INTERRUPTED
        return self.halted(self.target)

    def _each_change(self) -> tuple[list[Outcome], bool]:
        """Run the changes in order (downloads a few at once): their outcomes, reported
        in plan order, and whether some were skipped."""
        outcomes: list[Outcome] = []
        skip = ""  # why the remaining changes are not attempted
        while len(outcomes) < len(self.changes):
            at = len(outcomes)
            if not skip:
                skip = self._stopping() or ""
            if skip:
                done = [(self._skipped(at, skip), _Notes(self.reporter))]
            elif (why := self.refused.get(at)) is not None:
                done = [(Outcome(change=self.changes[at], status=Status.SKIPPED, message=why,
                                 refused=True), _Notes(self.reporter))]
            else:
                done = self._next(at)
            for outcome, notes in done:
                if outcome.status is Status.FAILED and not skip:
                    skip = EARLIER_FAILED
                if outcome.status is not Status.SKIPPED or outcome.message != INTERRUPTED:
                    notes.replay()  # the interrupt's one line says where apply stopped
                    self.reporter.done(outcome)
                outcomes.append(outcome)
        return outcomes, bool(skip)

    def _next(self, at: int) -> list[tuple[Outcome, _Notes]]:
        """Carry out the change at ``at``, or the downloads starting there (several at
        once): their outcomes in plan order, each with its notes."""
        window = self._window(at)
        if not window:
            aliases = self._alias_creates(at)
            if aliases:
                return self._together(at, len(aliases))
            return [(self._attempt(at, self.reporter), _Notes(self.reporter))]
        try:
            markers = self.records.mark_pulls(window, self.state.images)
        except IncusImagesError as exc:
            return [(Outcome(change=self.changes[at], status=Status.FAILED,
                             message=str(exc)), _Notes(self.reporter))]
        present = {img.fingerprint: img for img in self.state.images}
        gates = [threading.Event() for _ in window]
        starts = [Start(present=present, claimed=self.claimed - {t.fingerprint}, marker=m,
                        accepted=gate.set)
                  for t, m, gate in zip(window, markers, gates, strict=True)]
        if len(window) == 1:
            return [(self._attempt(at, self.reporter, starts[0]), _Notes(self.reporter))]
        return self._at_once(at, starts, gates)

    def _at_once(self, at: int, starts: list[Start], gates: list[threading.Event]
                 ) -> list[tuple[Outcome, _Notes]]:
        """The downloads from ``at`` on, at most ``pulls`` running at once, each started
        once the daemon took the one before on (or it ended), unless apply is stopping
        or one of them failed: the outcomes of those submitted, in plan order.  A marker
        of a download not started is cleared."""
        notes = [_Notes(self.reporter) for _ in starts]
        failed = threading.Event()

        def attempt(i: int) -> Outcome:
            try:
                if why := self._held_back(failed):  # waited for a free worker
                    return self._not_started(at + i, starts[i], why)
                outcome = self._attempt(at + i, notes[i], starts[i])
                if outcome.status is Status.FAILED:
                    failed.set()
                return outcome
            finally:
                gates[i].set()

        futures: list[Future[Outcome]] = []
        with ThreadPoolExecutor(max_workers=min(self.pulls, len(starts))) as pool:
            for i in range(len(starts)):
                if i and not self._may_start(gates[i - 1], futures[i - 1]):
                    break
                futures.append(pool.submit(attempt, i))
        for start in starts[len(futures):]:
            if start.marker is not None:
                self.records.clear_pull(start.marker)
        return [(f.result(), n) for f, n in zip(futures, notes, strict=False)]

    def _alias_creates(self, at: int) -> list[AliasCreate]:
        """The alias creations from ``at`` on that run together: at most :data:`WINDOW`,
        consecutive, of distinct names, none refused."""
        group: list[AliasCreate] = []
        for i, t in enumerate(self.typed[at:at + WINDOW], start=at):
            if not isinstance(t, AliasCreate) or i in self.refused \
                    or any(t.alias == other.alias for other in group):
                break
            group.append(t)
        return group

    def _together(self, at: int, count: int) -> list[tuple[Outcome, _Notes]]:
        """The ``count`` alias creations from ``at`` on (independent of each other), at
        most ``pulls`` at once; once one failed or apply began stopping, none starts.
        Their outcomes in plan order."""
        notes = [_Notes(self.reporter) for _ in range(count)]
        failed = threading.Event()

        def attempt(i: int) -> Outcome:
            if why := self._held_back(failed):
                return self._skipped(at + i, why)
            outcome = self._attempt(at + i, notes[i])
            if outcome.status is Status.FAILED:
                failed.set()
            return outcome

        with ThreadPoolExecutor(max_workers=min(self.pulls, count)) as pool:
            futures = [pool.submit(attempt, i) for i in range(count)]
        return [(f.result(), n) for f, n in zip(futures, notes, strict=True)]

    def _held_back(self, failed: threading.Event) -> str | None:
        """Why a change of a group must not start now, or None: another of the group
        failed, or the target is stopping (:meth:`_stopping`)."""
        return EARLIER_FAILED if failed.is_set() else self._stopping()

    def _not_started(self, at: int, start: Start, why: str) -> Outcome:
        """The download at ``at``, queued when apply began stopping or another download
        failed: skipped for ``why``, its marker cleared."""
        if start.marker is not None:
            self.records.clear_pull(start.marker)
        return self._skipped(at, why)

    def _skipped(self, at: int, why: str) -> Outcome:
        """The change at ``at``, not started for ``why``."""
        return Outcome(change=self.changes[at], status=Status.SKIPPED, message=why)

    def _may_start(self, before: threading.Event, previous: Future[Outcome]) -> bool:
        """Wait until the daemon took the previous download on (or it ended); then
        whether another may start."""
        before.wait()
        if self._stopping():
            return False
        return not (previous.done() and previous.result().status is Status.FAILED)

    def _window(self, at: int) -> list[ImageDownload]:
        """The downloads from ``at`` on that are marked in flight together: at most
        :data:`WINDOW`, consecutive, no two of one source nor two pulls by one alias of
        one server (their markers would claim each other's images).  Empty: the change
        at ``at`` is no download."""
        window: list[ImageDownload] = []
        keys: set[object] = set()
        for i, t in enumerate(self.typed[at:at + WINDOW], start=at):
            if not isinstance(t, ImageDownload) or i in self.refused:
                break
            mine = {t.source, (without_userinfo(t.pull.server), t.pull.alias or t.source)}
            if keys & mine:
                break
            keys |= mine
            window.append(t)
        return window

    def _attempt(self, at: int, reporter: Reporter, start: Start | None = None) -> Outcome:
        """The change at ``at`` through its handler, folded into :attr:`state` once it
        succeeded; a failure is its outcome, not an exception."""
        c, t = self.changes[at], self.typed[at]
        self.reporter.start(self.target, c)
        try:
            if isinstance(t, PlanError):
                raise t
            landed = self._handle(t, reporter, start)
        except IncusImagesError as exc:
            return Outcome(change=c, status=Status.FAILED, message=str(exc))
        with self._folding:
            self.state = fold(self.state, t, landed.image if landed is not None else None)
        if landed is None:
            return Outcome(change=c, status=Status.DONE)
        return Outcome(change=c, status=Status.DONE, via=landed.via,
                       fingerprint=landed.fingerprint, message=landed.message)

    def _handle(self, t: TypedChange, reporter: Reporter, start: Start | None) -> Landed | None:
        """The one handler of ``t``'s action (only a download says how it landed)."""
        match t:
            case ImageDownload():
                return self.download(t, start or Start(present={}), reporter)
            case ServerUpdate():
                set_server_keys(self.target, self.store, t.fields)
            case ImageAdopt():
                self.records.remember(t)
            case ImageUpdate():
                self.store.update_image(t.fingerprint, t.writable)
                self.records.remember(t)
            case AliasCreate():  # recorded with the next write
                self.store.create_alias(t.alias, t.to, t.description)
                self.records.defer_made_alias(t.alias, t.to)
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
        """The closing ownership write and the verification, on the state apply keeps
        and what it reads back of its alias and delete changes; a failure of either
        fails the last change attempted.  With refused changes the plan's records are
        not written (the records written as changes landed stand) and only the changes
        attempted are verified."""
        attempted = [t for i, t in enumerate(self.typed)
                     if not isinstance(t, PlanError) and i not in self.refused]
        try:
            state = self._checked()
            if not self.refused:
                self.records.close(state)
            self.records.flush()
            verify(self.target, attempted, state)
        except IncusImagesError as exc:
            at = max((i for i, o in enumerate(outcomes) if not o.refused), default=-1)
            outcomes[at] = outcomes[at].model_copy(
                update={"status": Status.FAILED, "message": str(exc)})

    def _checked(self) -> TargetState:
        """:attr:`state` where the daemon's word is only taken after reading it back: the
        alias table (one list call) when an alias changed, each deleted image (one
        ``GET``).  Downloads were read back as they landed."""
        state = self.state
        typed = [t for t in self.typed if not isinstance(t, PlanError)]
        if any(isinstance(t, AliasCreate | AliasMove | AliasUpdate | AliasDelete) for t in typed):
            state = with_aliases(state, self.store.get_aliases())
        for t in typed:
            if isinstance(t, ImageDelete):
                img = self.store.get_image(t.fingerprint)
                state = without_image(state, t.fingerprint) if img is None \
                    else with_image(state, img)
        return state


class _Notes:
    """A reporter for one change of several running at once: progress goes through
    as it comes, notes wait for :meth:`replay`, so the lines of each change come out
    together, in plan order."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.held: list[tuple[str, str]] = []

    def start(self, target: str, change: Change) -> None:
        self.reporter.start(target, change)

    def progress(self, target: str, change: Change, text: str) -> None:
        self.reporter.progress(target, change, text)

    def done(self, outcome: Outcome) -> None:
        self.reporter.done(outcome)

    def note(self, target: str, text: str) -> None:
        self.held.append((target, text))

    def replay(self) -> None:
        for target, text in self.held:
            self.reporter.note(target, text)
        self.held.clear()


def _typed_or_error(c: Change) -> TypedChange | PlanError:
    try:
        return typed(c)
    except PlanError as exc:
        return exc
