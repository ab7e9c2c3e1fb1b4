"""The one writer of an owner's ownership records (inventory) during an apply.

Every write goes through :func:`reconciler.core.inventory.update_inventory`
(compare-and-swap on the server config, starting from the config this writer
last wrote: :class:`~reconciler.core.inventory.KnownConfig`) and happens as a
change lands, so an apply killed at any point leaves a store the next plan
understands.  Writes are serialised (several downloads of one target may land
at once).

Invariants:
- An image enters the record (:meth:`Records.remember`) only once it is in the
  store, described by the plan's record of it.
- Pulls by alias are recorded as in flight (``PendingPull``, :meth:`Records.mark_pulls`,
  one write for several) before they start, and a marker is cleared only by a
  caller that knows the pull's outcome is settled.  The marker's record lists no
  alias: the image is not there yet, so the tool has made none point to it.
- A write may be deferred (:meth:`Records.defer`) only when a kill before it is
  written leaves a store the next plan reads the same way: a pull by alias that
  landed its planned image, whose marker still claims it; an alias created where
  it is declared (the next closing write records it).  Deferred changes ride
  along with the next write (in order, before it), and :meth:`Records.flush`
  writes what is left.
- An alias enters a record only once the tool itself made it point to that image
  (:meth:`Records.made_alias`, after its ``alias.create`` or ``alias.move``
  succeeded): until then the image's record leaves it out (:meth:`Records.vouched`),
  so an alias someone else made first is never taken for this owner's.
- The closing write (:meth:`Records.close`) stores the plan's records, each keeping
  only the aliases that really point to its image in the final state.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Protocol

from reconciler.core.inventory import KnownConfig, update_inventory
from reconciler.model.changes import ImageDownload, Recorded
from reconciler.model.observed import (
    Inventory,
    ObservedImage,
    PendingPull,
    RecordedImage,
    TargetState,
)
from reconciler.ports import ImageStore
from reconciler.redact import without_userinfo


class InventoryChange(Protocol):
    def __call__(self, inventory: Inventory, /) -> Inventory: ...


class Records:
    """Ownership records of ``owner`` in ``project`` on one target, as one apply changes it.

    ``planned`` is the plan's inventory for the target (None: the plan writes none);
    ``deleting`` the aliases the apply has still to delete.
    """

    def __init__(self, store: ImageStore, *, owner: str, project: str,
                 planned: Inventory | None, deleting: Iterable[str],
                 known: KnownConfig | None = None) -> None:
        self.store = store
        self.owner = owner
        self.project = project
        self.planned = planned
        self.made: set[tuple[str, str]] = set()
        """(alias, fingerprint): this run created or moved the alias to that image."""
        self.deleting = set(deleting)
        """Aliases this run still has to delete."""
        self.known = known or KnownConfig()
        self._deferred: list[InventoryChange] = []
        self._lock = threading.Lock()

    # -- images ------------------------------------------------------------------------------

    def remember(self, c: Recorded, *, clear: PendingPull | None = None) -> None:
        """Record image ``c.fingerprint`` as this owner's, described by ``c.record`` (and
        clear the marker ``clear`` in the same write)."""
        self._write(self._remembering(c, clear))

    def defer_remember(self, c: Recorded, *, clear: PendingPull) -> None:
        """:meth:`remember` with the next write: ``clear`` claims the image meanwhile."""
        self.defer(self._remembering(c, clear))

    def _remembering(self, c: Recorded, clear: PendingPull | None) -> InventoryChange:
        fp, planned = c.fingerprint, c.record

        def change(inv: Inventory) -> Inventory:
            rec = self.vouched(fp, planned, inv.images.get(fp))
            pending = inv.pending if clear is None else _without_marker(inv.pending, clear)
            return inv.model_copy(update={"images": {**inv.images, fp: rec},
                                          "pending": pending})

        return change

    def forget_image(self, fp: str) -> None:
        """Image ``fp`` is gone from the store: no record describes it any more."""
        self._write(lambda inv: inv.model_copy(
            update={"images": {k: v for k, v in inv.images.items() if k != fp}}))

    # -- pulls in flight ---------------------------------------------------------------------

    def mark_pulls(
        self, pulls: Sequence[ImageDownload], present: Iterable[ObservedImage]
    ) -> list[PendingPull | None]:
        """Record the pulls by alias of ``pulls`` as in flight (see ``PendingPull``), in one
        write, before they start.

        ``present`` is what the store holds before the pulls.  Each pull's marker, or
        None: nothing to mark (a pull by fingerprint)."""
        held = list(present)
        markers = [self._marker(c, held) for c in pulls]
        new = tuple(m for m in markers if m is not None)
        if new:
            self._write(lambda inv: inv.model_copy(update={"pending": (*inv.pending, *new)}))
        return markers

    def _marker(self, c: ImageDownload, present: Iterable[ObservedImage]) -> PendingPull | None:
        if c.pull.alias is None:
            return None
        # What the daemon will record (the adapter never hands it credentials).
        server, alias = without_userinfo(c.pull.server), c.pull.alias
        record = self.vouched(c.fingerprint, c.record, None)
        return PendingPull(server=server, alias=alias, record=record, before=tuple(sorted(
            img.fingerprint for img in present
            if img.update_source is not None
            and (img.update_source.server, img.update_source.alias) == (server, alias))))

    def clear_pull(self, marker: PendingPull) -> None:
        """The pull ``marker`` stands for is settled: nothing can land any more that it
        must claim.  Deferred: a marker that claims nothing changes no plan."""
        self.defer(lambda inv: inv.model_copy(
            update={"pending": _without_marker(inv.pending, marker)}))

    # -- aliases -----------------------------------------------------------------------------

    def vouched(
        self, fp: str, record: RecordedImage, stored: RecordedImage | None
    ) -> RecordedImage:
        """``record`` listing only the aliases this owner can vouch for on ``fp`` now.

        Those are the declared aliases that the stored record of ``fp`` already lists
        or that this run made point to ``fp``, and the stored ones this run still has to
        delete (so a kill before the delete leaves them this owner's, to delete next
        time).  An alias merely seen on the image at plan time is not among them: the
        closing write (:meth:`close`) records it once confirmed.
        """
        known = stored.aliases if stored is not None else ()
        aliases = tuple(a for a in record.aliases if a in known or (a, fp) in self.made)
        aliases += tuple(a for a in known if a in self.deleting and a not in aliases)
        if aliases == record.aliases:
            return record
        return record.model_copy(update={"aliases": aliases})

    def made_alias(self, name: str, fp: str) -> None:
        """Record alias ``name`` as this owner's on image ``fp``, and on no other
        image: the tool has just made it point there.

        The image's record is the stored one, else (an image attributed through the
        daemon's auto-update has none stored yet) the plan's, vouched for.
        """
        self._write(self._making(name, fp))

    def defer_made_alias(self, name: str, fp: str) -> None:
        """:meth:`made_alias` with the next write (an ``alias.create``: a kill before that
        write leaves an alias the next plan finds where it is declared, on its image,
        which the next closing write records; as a kill between the creation and a write
        of its own would)."""
        self.defer(self._making(name, fp))

    def _making(self, name: str, fp: str) -> InventoryChange:
        self.made.add((name, fp))
        fallback = self.planned.images.get(fp) if self.planned is not None else None

        def change(inv: Inventory) -> Inventory:
            stored = inv.images.get(fp)
            rec = stored or (self.vouched(fp, fallback, None) if fallback else None)
            images = {k: _without_alias(v, name) for k, v in inv.images.items()}
            if rec is not None:
                images[fp] = rec.model_copy(update={"aliases": (
                    *(a for a in rec.aliases if a != name), name)})
            return inv.model_copy(update={"images": images})

        return change

    def deleted_alias(self, name: str) -> None:
        """Alias ``name`` is gone: no record lists it any more."""
        self.deleting.discard(name)
        self._write(lambda inv: inv.model_copy(update={"images": {
            k: _without_alias(v, name) for k, v in inv.images.items()}}))

    # -- the closing write -------------------------------------------------------------------

    def close(self, state: TargetState) -> None:
        """After every change landed: store the plan's records, keeping only the aliases
        that point to their image in ``state`` (the final observation)."""
        if self.planned is None:
            return
        final = held_aliases_only(self.planned, state)
        self._write(lambda _inv: final)

    # -- writing ----------------------------------------------------------------------------

    def defer(self, change: InventoryChange) -> None:
        """Write ``change`` with the next write (see the module's invariants)."""
        with self._lock:
            self._deferred.append(change)

    def flush(self) -> None:
        """Write the deferred changes, if any."""
        with self._lock:
            if self._deferred:
                self._write_locked(lambda inv: inv)

    def _write(self, change: InventoryChange) -> None:
        with self._lock:
            self._write_locked(change)

    def _write_locked(self, change: InventoryChange) -> None:
        deferred = list(self._deferred)

        def everything(inv: Inventory) -> Inventory:
            for earlier in deferred:
                inv = earlier(inv)
            return change(inv)

        update_inventory(self.store, self.owner, self.project, everything, known=self.known)
        self._deferred.clear()


def held_aliases_only(inventory: Inventory, state: TargetState) -> Inventory:
    """``inventory`` where each image's record keeps only the aliases that point to it in
    ``state``: one that someone moved or deleted since the plan is not this owner's."""
    held = state.alias_targets()
    images = {fp: rec.model_copy(update={"aliases": tuple(
        a for a in rec.aliases if a in held and held[a].target == fp)})
        for fp, rec in inventory.images.items()}
    return inventory.model_copy(update={"images": images})


def _without_marker(pending: tuple[PendingPull, ...], marker: PendingPull
                    ) -> tuple[PendingPull, ...]:
    return tuple(p for p in pending if p != marker)


def _without_alias(record: RecordedImage, name: str) -> RecordedImage:
    if name not in record.aliases:
        return record
    return record.model_copy(update={"aliases": tuple(a for a in record.aliases if a != name)})
