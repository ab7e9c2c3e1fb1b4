"""Store-wide steps of one target's plan: prune, daemon-cached images, server settings,
free space, and the images the plan leaves alone.

Pure: each function reads a :class:`TargetView` and values, and returns values
(``now`` is passed in).  Holds the contract's "Ownership" rule that images of nobody
or of another owner are never deleted except where the file says so
(``policy.cached``), and "Writable fields" for ``server`` settings.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta

from reconciler.core.builds import iso
from reconciler.core.plan_changes import Deletion, Stamp
from reconciler.core.plan_view import TargetView
from reconciler.model.changes import ImageDownload, ServerUpdate, TypedChange
from reconciler.model.observed import ObservedImage, RecordedImage
from reconciler.model.plan import FieldChange, PlanWarning, Untouched


def prune(view: TargetView, keep: Collection[str], deleting: Collection[str],
          enabled: bool) -> tuple[tuple[Deletion, ...], tuple[tuple[str, RecordedImage], ...]]:
    """This owner's images that no entry keeps or deletes: deleted when ``policy.prune``
    is on, else kept in the inventory with their records (by fingerprint)."""
    deletions: list[Deletion] = []
    kept: list[tuple[str, RecordedImage]] = []
    for fp, a in view.mine.items():
        if fp in keep or fp in deleting:
            continue
        if enabled:
            deletions.append(Deletion(fp, "no longer declared",
                                      a.record.source if a.record else None))
        elif a.record is not None:
            kept.append((fp, a.record))
    return tuple(deletions), tuple(kept)


def stale_cached(view: TargetView, keep: Collection[str], days: int | None,
                 now: datetime) -> tuple[Deletion, ...]:
    """Daemon-cached images of nobody, unused for more than ``days`` days
    (``policy.cached.delete_unused_after``; None: never), in store order."""
    if days is None:
        return ()
    return tuple(
        Deletion(img.fingerprint, f"daemon-cached, unused since {iso(used)} "
                 f"(policy.cached.delete_unused_after: {days}d)", None)
        for img, used in _cached_of_nobody(view, keep)
        if used is not None and used + timedelta(days=days) < now)


def _cached_of_nobody(view: TargetView, keep: Collection[str],
                      ) -> list[tuple[ObservedImage, datetime | None]]:
    """Cached images nobody manages and no entry keeps, with their last use."""
    return [(img, img.last_used_at or img.uploaded_at) for img in view.state.images
            if view.owner_of(img.fingerprint) is None and img.cached
            and img.fingerprint not in keep]


def server_changes(view: TargetView, server: Mapping[str, str],
                   ) -> tuple[tuple[ServerUpdate, ...], tuple[str, ...]]:
    """``server.update`` per declared key that differs, by key; another owner's different
    value is a conflict.  Keys are daemon-wide, so every target on one daemon sees the
    same ones.  A key the daemon does not list has the value the store reports as its
    default (``TargetState.server_defaults``)."""
    changes: list[ServerUpdate] = []
    conflicts: list[str] = []
    for key, value in sorted(server.items()):
        conflicts += server_conflicts(view, key, value)
        current = view.state.server_config.get(key, view.state.server_defaults.get(key, ""))
        if current != value:
            changes.append(Stamp.of(view.state).server_update(
                "declared server setting differs",
                fields={key: FieldChange(from_=current, to=value)}))
    return tuple(changes), tuple(conflicts)


def server_conflicts(view: TargetView, key: str, value: str) -> list[str]:
    """Other owners that recorded ``key`` with another value, by owner."""
    return [f"target {view.target!r}: server setting {key} is set to {inv.server[key]!r} "
            f"by owner {other!r}; this file wants {value!r}"
            for other, inv in sorted(view.state.inventories.items())
            if other != view.owner and inv.server.get(key, value) != value]


def space_warnings(view: TargetView, changes: Sequence[TypedChange]
                   ) -> tuple[PlanWarning, ...]:
    """``storage.space`` when the planned downloads exceed the image store's free space,
    only where the daemon exposes it.  On a cluster whose members' space is known, one
    warning per member short of it (each member may hold a copy), naming the member;
    otherwise the contacted daemon's store is checked."""
    downloads = [c for c in changes if isinstance(c, ImageDownload)]
    need = sum(c.size for c in downloads)
    if not downloads:
        return ()
    image = ", ".join(sorted({c.source for c in downloads}))
    known = [m for m in view.state.members if m.images_free_bytes is not None]
    if known:
        return tuple(
            PlanWarning(code="storage.space", target=view.target, image=image,
                        message=f"the planned downloads need {need} bytes but the image "
                        f"store of member {m.name} has {m.images_free_bytes} bytes free; "
                        "free space or enlarge that member's storage.images_volume")
            for m in known if m.images_free_bytes is not None and need > m.images_free_bytes)
    free = view.state.images_free_bytes
    if free is None or need <= free:
        return ()
    return (PlanWarning(
        code="storage.space", target=view.target, image=image,
        message=f"the planned downloads need {need} bytes but the image store has {free} "
                "bytes free; free space or enlarge storage.images_volume"),)


def untouched(view: TargetView, keep: Collection[str],
              deleting: Collection[str]) -> tuple[Untouched, ...]:
    """Images of nobody or of another owner that the plan neither keeps nor deletes,
    in store order (the plan lists them)."""
    return tuple(
        Untouched(target=view.target, fingerprint=img.fingerprint,
                  owner=view.owner_of(img.fingerprint), cached=img.cached,
                  aliases=tuple(al.name for al in img.aliases))
        for img in view.state.images
        if view.owner_of(img.fingerprint) != view.owner
        and img.fingerprint not in deleting and img.fingerprint not in keep)
