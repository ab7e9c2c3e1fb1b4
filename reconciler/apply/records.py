"""The one writer of an owner's ownership records (inventory) during an apply.

Every write goes through :func:`reconciler.core.inventory.update_inventory`
(compare-and-swap on the server config) and happens as a change lands, so an
apply killed at any point leaves a store the next plan understands.

Invariants:
- An image enters the record (:meth:`Records.remember`) only once it is in the
  store, described by the plan's record of it.
- A pull by alias is recorded as in flight (``PendingPull``, :meth:`Records.mark_pull`)
  before it starts, and that marker is cleared (:meth:`Records.clear_pull`) only
  by a caller that knows the pull's outcome is settled.  The marker's record
  lists no alias: the image is not there yet, so the tool has made none point to it.
- An alias enters a record only once the tool itself made it point to that image
  (:meth:`Records.made_alias`, after its ``alias.create`` or ``alias.move``
  succeeded): until then the image's record leaves it out (:meth:`Records.vouched`),
  so an alias someone else made first is never taken for this owner's.
- The closing write (:meth:`Records.close`) stores the plan's records, each keeping
  only the aliases that really point to its image in the final observation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from reconciler.core.inventory import update_inventory
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
                 planned: Inventory | None, deleting: Iterable[str]) -> None:
        self.store = store
        self.owner = owner
        self.project = project
        self.planned = planned
        self.made: set[tuple[str, str]] = set()
        """(alias, fingerprint): this run created or moved the alias to that image."""
        self.deleting = set(deleting)
        """Aliases this run still has to delete."""

    # -- images ------------------------------------------------------------------------------

    def remember(self, c: Recorded) -> None:
        """Record image ``c.fingerprint`` as this owner's, described by ``c.record``."""
        fp, planned = c.fingerprint, c.record

        def change(inv: Inventory) -> Inventory:
            rec = self.vouched(fp, planned, inv.images.get(fp))
            return inv.model_copy(update={"images": {**inv.images, fp: rec}})

        self._write(change)

    def forget_image(self, fp: str) -> None:
        """Image ``fp`` is gone from the store: no record describes it any more."""
        self._write(lambda inv: inv.model_copy(
            update={"images": {k: v for k, v in inv.images.items() if k != fp}}))

    # -- pulls in flight ---------------------------------------------------------------------

    def mark_pull(self, c: ImageDownload, present: Iterable[ObservedImage]) -> PendingPull | None:
        """Record a pull by alias as in flight (see ``PendingPull``) before it starts.

        ``present`` is what the store holds before the pull.  None: nothing to mark
        (a pull by fingerprint, or an image the plan does not record)."""
        if c.pull.alias is None:
            return None
        # What the daemon will record (the adapter never hands it credentials).
        server, alias = without_userinfo(c.pull.server), c.pull.alias
        record = self.vouched(c.fingerprint, c.record, None)
        marker = PendingPull(server=server, alias=alias, record=record, before=tuple(sorted(
            img.fingerprint for img in present
            if img.update_source is not None
            and (img.update_source.server, img.update_source.alias) == (server, alias))))
        self._write(lambda inv: inv.model_copy(update={"pending": (*inv.pending, marker)}))
        return marker

    def clear_pull(self, marker: PendingPull) -> None:
        """The pull ``marker`` stands for is settled: nothing can land any more that it
        must claim."""
        self._write(lambda inv: inv.model_copy(
            update={"pending": tuple(p for p in inv.pending if p != marker)}))

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

        self._write(change)

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

    def _write(self, change: InventoryChange) -> None:
        update_inventory(self.store, self.owner, self.project, change)


def held_aliases_only(inventory: Inventory, state: TargetState) -> Inventory:
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
