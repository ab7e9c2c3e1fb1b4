"""Carry out a :class:`Plan` through the ports, target by target, concurrently.

Invariants:
- Changes of one target run in plan order; the first failure stops that target
  (later changes are ``skipped``), so an old build and its aliases are never
  removed before their replacement is in place.
- A download lands exactly the planned fingerprint or fails: when the daemon
  lands another build (its simplestreams cache is up to an hour old) or cannot
  find the planned one, the files are fetched from the remote, checked against
  its index, and uploaded (``via="upload"``); so it is, without asking the
  daemon, when the remote's URL carries credentials (``RemoteSpec.daemon_can_pull``).
  A pull that resolved to an image already in the store has overwritten that
  image's writable fields with the request's (the daemon does so even when the
  operation fails): they are put back.
- Ownership records are written as changes land, so an apply killed at any
  point leaves a store the next plan understands.  A pull's in-flight marker
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
- After a target's changes, one observation checks that each change really
  landed; a daemon that reported success without doing the work is an error.
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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, suppress
from typing import Protocol

from reconciler.core.inventory import update_inventory
from reconciler.errors import (
    ApplyError,
    IncusImagesError,
    Interrupted,
    NotFound,
    OperationAbandoned,
    OperationFailed,
    PreconditionFailed,
)
from reconciler.interrupts import threads_without_signals
from reconciler.model.config import RemoteSpec
from reconciler.model.observed import (
    Inventory,
    ObservedImage,
    PendingPull,
    RecordedImage,
    TargetState,
)
from reconciler.model.plan import Action, Change, Plan, Writable
from reconciler.model.result import ApplyResult, Outcome, Status
from reconciler.ports import ImageStore, RemoteReader
from reconciler.redact import without_userinfo
from reconciler.render.progress import Reporter, SilentReporter, change_label

INTERRUPTED = "not attempted: interrupted"


def apply_plan(
    plan: Plan,
    *,
    stores: Mapping[str, ImageStore],
    reader: RemoteReader,
    remotes: Mapping[str, RemoteSpec],
    reporter: Reporter | None = None,
) -> ApplyResult:
    """Apply every change of ``plan``; targets run concurrently, each in plan order."""
    rep = reporter or SilentReporter()
    targets = sorted({c.target for c in plan.changes})
    missing = [t for t in targets if t not in stores]
    if missing:
        raise ApplyError(f"no connection for target(s) {', '.join(missing)}")
    if not targets:
        return ApplyResult()
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=min(4, len(targets)))
    futures: list[Future[list[Outcome]]] = []
    try:
        with threads_without_signals():  # the workers leave SIGINT/SIGTERM to this thread
            for t in targets:
                futures.append(pool.submit(
                    _TargetRun(plan, t, stores[t], reader, remotes, rep, stop).run))
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
    def __init__(
        self, plan: Plan, target: str, store: ImageStore, reader: RemoteReader,
        remotes: Mapping[str, RemoteSpec], reporter: Reporter,
        stop: threading.Event | None = None,
    ) -> None:
        self.plan = plan
        self.stop = stop or threading.Event()
        self.target = target
        self.store = store
        self.reader = reader
        self.remotes = remotes
        self.reporter = reporter
        self.changes = plan.for_target(target)
        self.project = self.changes[0].project if self.changes else store.project
        self.made: set[tuple[str, str]] = set()
        """(alias, fingerprint): this run created or moved the alias to that image."""
        self.deleting = {c.alias or "" for c in self.changes if c.action is Action.ALIAS_DELETE}
        """Aliases this run still has to delete."""

    def run(self) -> list[Outcome]:
        outcomes: list[Outcome] = []
        try:  # an unreachable target fails every change at once, attempting none
            self.store.observe()
        except IncusImagesError as exc:
            return [Outcome(change=c, status=Status.FAILED, message=str(exc))
                    for c in self.changes]
        skip = ""  # why the remaining changes are not attempted
        for change in self.changes:
            if not skip and self.stop.is_set():
                skip = INTERRUPTED
            if skip:
                outcome = Outcome(change=change, status=Status.SKIPPED, message=skip)
            else:
                try:
                    outcome = self._do(change)
                except IncusImagesError as exc:
                    outcome = Outcome(change=change, status=Status.FAILED, message=str(exc))
                    skip = "not attempted: an earlier change of this target failed"
            if skip != INTERRUPTED:  # the interrupt's one line says where apply stopped
                self.reporter.done(outcome)
            outcomes.append(outcome)
        if skip:
            return outcomes
        try:
            state = self.store.observe()
            planned = self.plan.ownership.get(self.target)
            if planned is not None:
                final = _held_aliases_only(planned, state)
                self._record(lambda _inv: final)
            self._verify(state)
        except IncusImagesError as exc:
            last = outcomes[-1]
            outcomes[-1] = last.model_copy(update={"status": Status.FAILED, "message": str(exc)})
        return outcomes

    # -- one change -------------------------------------------------------------------------

    def _do(self, c: Change) -> Outcome:
        fp = c.fingerprint or ""
        if c.action is Action.SERVER_UPDATE:
            self._server_update(c)
        elif c.action is Action.IMAGE_DOWNLOAD:
            return self._download(c)
        elif c.action is Action.IMAGE_ADOPT:
            self._remember(c)
        elif c.action is Action.IMAGE_UPDATE:
            assert c.writable is not None
            self.store.update_image(fp, c.writable)
            self._remember(c)
        elif c.action is Action.ALIAS_CREATE:
            self.store.create_alias(c.alias or "", c.to or "", c.description or "")
            self._made_alias(c)
        elif c.action is Action.ALIAS_MOVE:
            self.store.move_alias(c.alias or "", c.to or "")
            self._made_alias(c)
        elif c.action is Action.ALIAS_UPDATE:
            self.store.update_alias(c.alias or "", c.description or "")
        elif c.action is Action.ALIAS_DELETE:
            with suppress(NotFound):
                self.store.delete_alias(c.alias or "")
            self._deleted_alias(c)
        elif c.action is Action.IMAGE_DELETE:
            with suppress(NotFound):
                self.store.delete_image(fp)
            self._record(lambda inv: inv.model_copy(
                update={"images": {k: v for k, v in inv.images.items() if k != fp}}))
        else:
            raise ApplyError(f"target {self.target!r}: {c.action.value} is not supported")
        return Outcome(change=c, status=Status.DONE)

    def _server_update(self, c: Change) -> None:
        """Write each key with compare-and-swap, retrying while other writers move the ETag."""
        for key, fc in (c.fields or {}).items():
            for _ in range(10):
                config, etag = self.store.get_server_config()
                if config.get(key) == fc.to:
                    break
                try:
                    self.store.patch_server_config({key: str(fc.to)}, etag)
                    break
                except PreconditionFailed:
                    continue
            else:
                raise ApplyError(f"target {self.target!r}: could not set {key}: the server "
                                 "config kept changing (10 attempts)")

    def _download(self, c: Change) -> Outcome:
        assert c.pull is not None and c.writable is not None and c.fingerprint is not None
        fp = c.fingerprint
        if c.replace_cached:
            with suppress(NotFound):
                self.store.delete_image(fp)
        remote = self.remotes.get(c.pull.remote)
        if remote is not None and not remote.daemon_can_pull:
            landed, why = None, CREDENTIALS_NOT_FOR_DAEMON
            self.reporter.note(self.target, f"{c.source}: {why}; fetching the files, checked "
                               "against the remote's index, and uploading them")
        else:
            landed, why = self._pull(c, remote.certificate if remote else None)
            if landed != fp:
                self.reporter.note(self.target, f"{c.source}: the daemon did not pull "
                                   f"{fp[:12]} ({why}); uploading the files, checked against "
                                   "the remote's index, instead")
        via = "pull"
        if landed != fp:
            self._upload(c, remote)
            via = "upload"
        self.store.update_image(fp, c.writable)
        self._remember(c)
        return Outcome(change=c, status=Status.DONE, via=via, fingerprint=fp,
                       message="" if via == "pull" else why)

    def _pull(self, c: Change, certificate: str | None) -> tuple[str | None, str]:
        """Ask the daemon to pull ``c``: the fingerprint it landed (None: none) and, when
        that is not the planned one, why.  Leaves no image the store did not hold before
        but the planned one, and puts back fields the pull overwrote on others."""
        assert c.pull is not None and c.writable is not None and c.fingerprint is not None
        fp, writable = c.fingerprint, c.writable
        landed: str | None = None
        why = ""
        present = {img.fingerprint: img for img in self.store.observe().images}
        marker = self._mark_pull(c, present.values())
        settled = False  # whether nothing can land any more that the marker must claim
        try:
            try:
                landed = self.store.pull_image(
                    c.pull, certificate=certificate, writable=writable,
                    progress=lambda text: self.reporter.progress(self.target, c, text))
            except OperationFailed as exc:
                why = str(exc)
            except OperationAbandoned as exc:
                settled = exc.cancelled
                raise
            if landed != fp:
                self._undo_upsert(present, writable, fp)
                if landed is not None:
                    why = f"the daemon landed {landed[:12]} (its index of the remote is older)"
                    if landed not in present:
                        self.store.delete_image(landed)
            elif c.record is not None:
                self._remember(c)
            settled = True
        finally:
            if marker is not None and settled:
                self._record(lambda inv: inv.model_copy(
                    update={"pending": tuple(p for p in inv.pending if p != marker)}))
        return landed, why

    def _undo_upsert(
        self, before: Mapping[str, ObservedImage], sent: Writable, planned: str
    ) -> None:
        """Give back the writable fields the daemon overwrote on an image it already had.

        A pull by alias that resolves (through the daemon's older index) to an image
        already in the store writes the request's ``public``, ``auto_update``,
        ``profiles`` and properties onto that image, even when the operation then
        fails.  That image may be nobody's or another owner's, whose fields the
        tool never changes: every image that was present before the pull and now
        carries exactly what the request sent gets its previous fields back.
        """
        for img in self.store.observe().images:
            old = before.get(img.fingerprint)
            if old is None or img.fingerprint == planned or not _upserted(old, img, sent):
                continue
            keys = set(old.properties) | set(img.properties)
            self.store.update_image(img.fingerprint, Writable(
                auto_update=old.auto_update, public=old.public, profiles=old.profiles,
                properties={k: old.properties.get(k) for k in sorted(keys)},
                expires_at=old.expires_at))

    def _upload(self, c: Change, remote: RemoteSpec | None) -> None:
        assert c.pull is not None and c.fingerprint is not None
        if remote is None or not c.pull.files:
            raise ApplyError(f"target {self.target!r}: cannot land {c.fingerprint[:12]} of "
                             f"{c.source}: the daemon did not, and the remote offers no files")
        with ExitStack() as stack:
            parts: list[tuple[str, Iterator[bytes]]] = [
                (f.ftype, stack.enter_context(self.reader.open_file(remote, f)))
                for f in c.pull.files
            ]
            got = self.store.upload_image(
                parts, fingerprint=c.fingerprint, type_=c.pull.image_type,
                progress=lambda text: self.reporter.progress(self.target, c, text))
        if got != c.fingerprint:
            raise ApplyError(f"target {self.target!r}: upload of {c.source} landed "
                             f"{got[:12]}, not {c.fingerprint[:12]}")

    # -- ownership ---------------------------------------------------------------------------

    def _mark_pull(self, c: Change, present: Iterable[ObservedImage]) -> PendingPull | None:
        """Record a pull by alias as in flight (see ``PendingPull``) before it starts.

        The marker's record lists no alias: the image is not there yet, so the tool has
        made none point to it."""
        if c.pull is None or c.pull.alias is None or c.record is None:
            return None
        # What the daemon will record (the adapter never hands it credentials).
        server, alias = without_userinfo(c.pull.server), c.pull.alias
        record = self._vouched(c.fingerprint or "", c.record, None)
        marker = PendingPull(server=server, alias=alias, record=record, before=tuple(sorted(
            img.fingerprint for img in present
            if img.update_source is not None
            and (img.update_source.server, img.update_source.alias) == (server, alias))))
        self._record(lambda inv: inv.model_copy(update={"pending": (*inv.pending, marker)}))
        return marker

    def _remember(self, c: Change) -> None:
        """Record image ``c.fingerprint`` as this owner's, described by ``c.record``."""
        if c.record is None or c.fingerprint is None:
            return
        fp, planned = c.fingerprint, c.record

        def change(inv: Inventory) -> Inventory:
            rec = self._vouched(fp, planned, inv.images.get(fp))
            return inv.model_copy(update={"images": {**inv.images, fp: rec}})

        self._record(change)

    def _vouched(
        self, fp: str, record: RecordedImage, stored: RecordedImage | None
    ) -> RecordedImage:
        """``record`` listing only the aliases this owner can vouch for on ``fp`` now.

        Those are the declared aliases that the stored record of ``fp`` already lists
        or that this run made point to ``fp``, and the stored ones this run still has to
        delete (so a kill before the delete leaves them this owner's, to delete next
        time).  An alias merely seen on the image at plan time is not among them: the
        closing write (:func:`_held_aliases_only`) records it once confirmed.
        """
        known = stored.aliases if stored is not None else ()
        aliases = tuple(a for a in record.aliases if a in known or (a, fp) in self.made)
        aliases += tuple(a for a in known if a in self.deleting and a not in aliases)
        if aliases == record.aliases:
            return record
        return record.model_copy(update={"aliases": aliases})

    def _made_alias(self, c: Change) -> None:
        """Record alias ``c.alias`` as this owner's on image ``c.to``, and on no other
        image: the tool has just made it point there.

        The image's record is the stored one, else (an image attributed through the
        daemon's auto-update has none stored yet) the plan's, vouched for.
        """
        name, fp = c.alias or "", c.to or ""
        self.made.add((name, fp))
        planned = self.plan.ownership.get(self.target)
        fallback = planned.images.get(fp) if planned is not None else None

        def change(inv: Inventory) -> Inventory:
            stored = inv.images.get(fp)
            rec = stored or (self._vouched(fp, fallback, None) if fallback else None)
            images = {k: _without_alias(v, name) for k, v in inv.images.items()}
            if rec is not None:
                images[fp] = rec.model_copy(update={"aliases": (
                    *(a for a in rec.aliases if a != name), name)})
            return inv.model_copy(update={"images": images})

        self._record(change)

    def _deleted_alias(self, c: Change) -> None:
        """Alias ``c.alias`` is gone: no record lists it any more."""
        name = c.alias or ""
        self.deleting.discard(name)
        self._record(lambda inv: inv.model_copy(update={"images": {
            k: _without_alias(v, name) for k, v in inv.images.items()}}))

    def _record(self, change: _InventoryChange) -> None:
        update_inventory(self.store, self.plan.owner, self.project, change)

    # -- verification ------------------------------------------------------------------------

    def _verify(self, state: TargetState) -> None:
        present = {img.fingerprint for img in state.images}
        aliases = state.alias_targets()
        problems: list[str] = []
        for c in self.changes:
            a = c.action
            if a in (Action.IMAGE_DOWNLOAD, Action.IMAGE_ADOPT) and c.fingerprint not in present:
                problems.append(f"image {c.fingerprint} is not in the store")
            elif a is Action.IMAGE_DELETE and c.fingerprint in present:
                problems.append(f"image {c.fingerprint} is still in the store")
            elif a in (Action.ALIAS_CREATE, Action.ALIAS_MOVE):
                held = aliases.get(c.alias or "")
                if held is None or held.target != c.to:
                    problems.append(f"alias {c.alias!r} does not point to {c.to}")
            elif a is Action.ALIAS_DELETE and (c.alias or "") in aliases:
                problems.append(f"alias {c.alias!r} still exists")
        if problems:
            raise ApplyError(f"target {self.target!r}: the daemon reported success but "
                             + "; ".join(problems))


def _held_aliases_only(inventory: Inventory, state: TargetState) -> Inventory:
    """``inventory`` where each image's record keeps only the aliases that point to it in
    ``state``: one that someone moved or deleted since the plan is not this owner's."""
    held = state.alias_targets()
    images = {fp: rec.model_copy(update={"aliases": tuple(
        a for a in rec.aliases if a in held and held[a].target == fp)})
        for fp, rec in inventory.images.items()}
    return inventory.model_copy(update={"images": images})


def _without_alias(record: RecordedImage, name: str) -> RecordedImage:
    if name not in record.aliases:
        return record
    return record.model_copy(update={"aliases": tuple(a for a in record.aliases if a != name)})


CREDENTIALS_NOT_FOR_DAEMON = (
    "the remote's URL carries credentials (user:password@), which the daemon would store "
    "in the image's source and show to anyone who can list images, so the daemon is not "
    "asked to pull")


def _writable_fields(img: ObservedImage) -> tuple[object, ...]:
    return (img.auto_update, img.public, tuple(img.profiles), img.properties)


def _upserted(before: ObservedImage, after: ObservedImage, sent: Writable) -> bool:
    """Whether ``after`` differs from ``before`` by exactly a pull request's fields."""
    if _writable_fields(before) == _writable_fields(after):
        return False
    props = {**before.properties,
             **{k: v for k, v in sent.properties.items() if v not in (None, "")}}
    return (after.auto_update == sent.auto_update and after.public == sent.public
            and tuple(after.profiles) == tuple(sent.profiles) and after.properties == props)


class _InventoryChange(Protocol):
    def __call__(self, inventory: Inventory, /) -> Inventory: ...
