"""The plan of one desired entry on one target: which image it wants, and how to get there.

Pure: every function takes values and returns values (``now`` is passed in).  The
contract rules held here are "Tracking", "Adoption", "Writable fields" and "Expiry";
each function names the ones it holds.  An entry's outcome is an :class:`EntryPlan`;
:mod:`reconciler.core.planner` composes them in file order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from reconciler.core import requirements
from reconciler.core.builds import Resolved, expiry_of, iso, pull_alias, resolve_entry, short
from reconciler.core.copies import repair_reason
from reconciler.core.plan_changes import Deletion, Stamp
from reconciler.core.plan_fields import image_update
from reconciler.core.plan_view import TargetView, entry_key
from reconciler.errors import PlanError
from reconciler.model.changes import ImageDownload, TypedChange
from reconciler.model.config import EntrySpec, RemoteSpec
from reconciler.model.keys import EntryKey
from reconciler.model.lock import LockedBuild, LockKey
from reconciler.model.observed import ObservedImage, RecordedImage
from reconciler.model.plan import PlanWarning, PullSource, Writable
from reconciler.model.remote import RemoteCatalog, RemoteImage


@dataclass(frozen=True)
class DeclaredAlias:
    """An alias an entry declares, on the fingerprint that entry wants."""

    name: str
    fingerprint: str
    description: str
    source: str


@dataclass(frozen=True)
class EntryPlan:
    """What one entry contributes to its target's plan, each part in the order made.

    ``keep``: the image the entry keeps and its record for this owner's inventory;
    ``aliases``: the aliases it declares (empty when it keeps nothing, or conflicts).
    """

    changes: tuple[TypedChange, ...] = ()
    deletions: tuple[Deletion, ...] = ()
    warnings: tuple[PlanWarning, ...] = ()
    notes: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    keep: tuple[str, RecordedImage] | None = None
    aliases: tuple[DeclaredAlias, ...] = ()


@dataclass(frozen=True)
class Wanted:
    """An entry resolved on one target: the build it wants and the store's copy of it."""

    entry: EntrySpec
    key: EntryKey
    resolved: Resolved
    fingerprint: str
    current: ObservedImage | None
    expiry: datetime | None
    catalog: RemoteCatalog | None


def resolve_wanted(view: TargetView, entry: EntrySpec, catalog: RemoteCatalog | None,
                   locks: Mapping[LockKey, LockedBuild] | None) -> Wanted:
    """Resolve ``entry`` (:func:`reconciler.core.builds.resolve_entry`) and its expiry.

    Raises ``PlanError`` when the remote has no such image.  ``expires_after`` counts
    from the build date: the store's copy's when present, else the remote's.
    """
    state = view.state
    key = entry_key(entry, state.host_architecture)
    res = resolve_entry(entry, key.architecture, catalog, locks, state,
                        list(view.managed.get(key, ())))
    if res.wanted is None:
        raise PlanError(
            f"remote {entry.remote!r} has no {entry.type} image {entry.remote_alias!r} "
            f"for architecture {key.architecture} (entry {entry.source}, target "
            f"{state.target!r})"
        )
    current = state.image(res.wanted)
    created = current.created_at if current else (res.build.created_at if res.build else None)
    return Wanted(entry, key, res, res.wanted, current, expiry_of(entry, created), catalog)


def plan_entry(view: TargetView, entry: EntrySpec, catalog: RemoteCatalog | None,
               locks: Mapping[LockKey, LockedBuild] | None, remote: RemoteSpec | None,
               now: datetime) -> EntryPlan:
    """The plan of one entry.

    Expired (contract "Expiry"): every image of its key is deleted, nothing is pulled.
    Resolving to another owner's image: a conflict ("Adoption").  Otherwise the wanted
    image is downloaded, or adopted and updated, its aliases declared, and this
    owner's other images of the same key deleted as replaced ("Tracking").
    """
    w = resolve_wanted(view, entry, catalog, locks)
    warnings = tuple(w.resolved.warnings)
    if w.expiry is not None and w.expiry <= now:
        reason = f"expired on {iso(w.expiry)}"
        return EntryPlan(warnings=warnings, deletions=tuple(
            Deletion(fp, reason, entry.source) for fp in view.managed.get(w.key, ())))
    record = record_of(w)
    found, notes = preflight(view, entry, w.resolved.build, w.current)
    keep = (w.fingerprint, record)
    conflict = owner_conflict(view, w)
    if conflict is not None:
        return EntryPlan(warnings=warnings + found, notes=notes, conflicts=(conflict,),
                         keep=keep)
    repair = None if w.current is None or w.resolved.build is None else repair_reason(
        view, w.fingerprint)
    if w.current is None or w.current.cached or repair is not None:
        changes, more = fetch(view, w, record, remote, repair)
    else:
        changes, more = keep_present(view, w, w.current, record)
    replaced = f"replaced by the newer build {short(w.fingerprint)}"
    return EntryPlan(
        changes=changes, warnings=warnings + found + more, notes=notes, keep=keep,
        aliases=tuple(DeclaredAlias(a.name, w.fingerprint, a.description, entry.source)
                      for a in entry.aliases),
        deletions=tuple(Deletion(fp, replaced, entry.source)
                        for fp in view.managed.get(w.key, ()) if fp != w.fingerprint),
    )


def record_of(w: Wanted) -> RecordedImage:
    """The inventory record of the image ``w`` keeps: what this owner declared for it."""
    entry = w.entry
    return RecordedImage(
        source=entry.source, type=entry.type, architecture=w.key.architecture,
        aliases=tuple(a.name for a in entry.aliases),
        properties=tuple(sorted(entry.properties)), expires_at=w.expiry is not None,
    )


def owner_conflict(view: TargetView, w: Wanted) -> str | None:
    """The conflict when the wanted image is present and another owner manages it."""
    owner_now = view.owner_of(w.fingerprint) if w.current is not None else None
    if owner_now in (None, view.owner):
        return None
    return (f"target {view.target!r}: {w.entry.source} resolves to {short(w.fingerprint)}, "
            f"which owner {owner_now!r} manages; two owners cannot share one image")


def preflight(view: TargetView, entry: EntrySpec, build: RemoteImage | None,
              current: ObservedImage | None) -> tuple[tuple[PlanWarning, ...], tuple[str, ...]]:
    """Requirement warnings and notes for an image the plan downloads or keeps: the
    remote's ``requirements`` before download, the image's ``requirements.*`` after."""
    reqs = dict(build.requirements) if build else {}
    if current is not None:
        reqs.update(requirements.from_properties(current.properties))
    if not reqs:
        return (), ()
    state = view.state
    found, notes = requirements.check(reqs, type_=entry.type, profile_names=entry.profiles,
                                      profiles=state.profiles, kernel_cgroup=state.kernel_cgroup)
    return (tuple(PlanWarning(code=f.code, target=state.target, image=entry.source,
                              message=f.message) for f in found),
            tuple(f"target {state.target!r}, {entry.source}: {n}" for n in notes))


def fetch(view: TargetView, w: Wanted, record: RecordedImage, remote: RemoteSpec | None,
          repair: str | None = None,
          ) -> tuple[tuple[TypedChange, ...], tuple[PlanWarning, ...]]:
    """Download a wanted image the store lacks, or holds only as a daemon-cached copy or
    as a broken one (``repair``: the reason; either is deleted and pulled again).  Warns
    ``auto_update.no_source`` when the remote needs credentials, so the tool uploads the
    build and the daemon cannot update it.  Raises ``PlanError`` when the build is neither
    served nor present."""
    entry = w.entry
    build = w.resolved.build
    if build is None:
        raise PlanError(w.resolved.unavailable or (
            f"pinned fingerprint {w.fingerprint} of {entry.source} is neither in target "
            f"{view.target!r} nor served by remote {entry.remote!r}"
        ))
    change = download(view, w, build, record, repair)
    if not (entry.auto_update and not entry.pinned and remote and not remote.daemon_can_pull):
        return (change,), ()
    return (change,), (PlanWarning(
        code="auto_update.no_source", target=view.target, image=entry.source,
        message=f"image {short(w.fingerprint)} will be uploaded by incus-images, because "
        f"remote {entry.remote!r} needs credentials that are never handed to the "
        "daemon; so the daemon cannot auto-update it, and incus-images brings "
        "newer builds at each apply instead"),)


def download(view: TargetView, w: Wanted, build: RemoteImage,
             record: RecordedImage, repair: str | None = None) -> ImageDownload:
    """``image.download`` of ``build``.  Only a tracked entry's newest build is pulled by
    alias (so the daemon records the alias as the image's source); a pin or an older
    locked build is pulled by fingerprint.  A present copy (daemon-cached, or broken:
    ``repair`` is the reason) is deleted first (``replace_cached``)."""
    entry, catalog = w.entry, w.catalog
    assert catalog is not None
    if entry.pinned or build.fingerprint != w.fingerprint or not w.resolved.latest:
        pull = PullSource(remote=entry.remote, server=catalog.url, protocol=catalog.protocol,
                          fingerprint=w.fingerprint, image_type=entry.type, files=build.files)
    else:
        pull = PullSource(remote=entry.remote, server=catalog.url, protocol=catalog.protocol,
                          alias=pull_alias(entry, build, view.state.host_architecture,
                                           catalog.protocol),
                          image_type=entry.type, files=build.files)
    writable = Writable(
        auto_update=entry.auto_update and not entry.pinned, public=entry.public,
        profiles=entry.profiles, properties=dict(entry.properties),
        expires_at=w.expiry if w.expiry is not None else build.expires_at,
    )
    replace_cached = w.current is not None
    reason = repair or ("declared, present only as a daemon-cached copy (deleted and pulled "
                        "again)" if replace_cached else "declared, not in store")
    return Stamp.of(view.state).download(
        reason, fingerprint=w.fingerprint, source=entry.source, size=build.size, pull=pull,
        writable=writable, record=record, replace_cached=replace_cached)


def keep_present(view: TargetView, w: Wanted, current: ObservedImage, record: RecordedImage,
                 ) -> tuple[tuple[TypedChange, ...], tuple[PlanWarning, ...]]:
    """A wanted image already in the store: adopt it when nobody manages it yet (or an
    interrupted apply landed it), then restore its declared fields.  Warns
    ``auto_update.no_source`` when the daemon recorded no source to update it from."""
    entry = w.entry
    attribution = view.attrs[w.fingerprint]
    stamp = Stamp.of(view.state)
    changes: list[TypedChange] = []
    if attribution.owner is None or attribution.in_flight:
        why = ("landed by an interrupted apply, not yet recorded"
               if attribution.in_flight else "managed by nobody")
        changes.append(stamp.adopt("present in the store with the declared fingerprint, "
                                   + why, fingerprint=w.fingerprint, source=entry.source,
                                   record=record))
    prior = attribution.record if attribution.owner == view.owner else None
    update = image_update(stamp, entry, current, prior, w.expiry, record)
    if update is not None:
        changes.append(update)
    if not (entry.auto_update and not entry.pinned and current.update_source is None):
        return tuple(changes), ()
    return tuple(changes), (PlanWarning(
        code="auto_update.no_source", target=view.target, image=entry.source,
        message=f"image {short(w.fingerprint)} has no source recorded by the daemon, so "
        "the daemon cannot auto-update it; incus-images brings newer builds at "
        "each apply instead"),)
