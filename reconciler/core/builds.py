"""Which build an entry wants on a target: its pin, its locked build, or the newest.

Pure, like the planner that uses it: every input is a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from reconciler.model.config import EntrySpec
from reconciler.model.fingerprint import short_fingerprint
from reconciler.model.keys import EntryKey
from reconciler.model.lock import LockedBuild
from reconciler.model.observed import TargetState
from reconciler.model.plan import PlanWarning
from reconciler.model.remote import RemoteCatalog, RemoteImage
from reconciler.model.times import rfc3339_seconds, same_second

# The planner's names for the model's helpers (reconciler.model.fingerprint, .times).


def short(fingerprint: str | None) -> str:
    """The planner's short fingerprint: "" (not "?") when there is none."""
    return short_fingerprint(fingerprint, missing="")


iso = rfc3339_seconds
same_time = same_second


def resolve_build(entry: EntrySpec, arch: str, catalog: RemoteCatalog | None) -> RemoteImage | None:
    """The build an entry wants: its pin, or what its remote alias names now."""
    if catalog is None:
        return None
    if entry.fingerprint is not None:
        return catalog.by_fingerprint(entry.fingerprint)
    return catalog.resolve(entry.remote_alias, entry.type, arch)


@dataclass
class Resolved:
    """The build an entry wants on one target.

    ``wanted`` is its fingerprint (None: the remote has no such image); ``build``
    the remote's record of it (None when the remote no longer serves it);
    ``latest`` whether it is what the remote alias names now (only such a build
    may be pulled by alias); ``unavailable`` the error to raise when the build is
    neither served nor in the store.
    """

    build: RemoteImage | None
    wanted: str | None
    latest: bool = True
    warnings: list[PlanWarning] = field(default_factory=list)
    unavailable: str | None = None


def resolve_entry(
    entry: EntrySpec, arch: str, catalog: RemoteCatalog | None,
    locks: Mapping[EntryKey, LockedBuild] | None, state: TargetState, managed: list[str],
) -> Resolved:
    """Resolve an entry: its pin; else, with a lock file, its locked build; else the newest.

    With a lock file: an entry missing from it is resolved live (``lock.missing``);
    an ``auto_update`` entry whose managed image the daemon already moved past the
    locked build keeps that newer image (not drift); a locked build older than the
    remote's newest is pulled by fingerprint, so with ``auto_update`` the daemon gets
    no source to update it from (``auto_update.no_source``).
    """
    if entry.pinned or locks is None:
        build = resolve_build(entry, arch, catalog)
        return Resolved(build, entry.fingerprint or (build.fingerprint if build else None))
    newest = catalog.resolve(entry.remote_alias, entry.type, arch) if catalog else None
    locked = locks.get(EntryKey(state.target, entry.source, entry.type, arch))
    if locked is None:
        return Resolved(newest, newest.fingerprint if newest else None, warnings=[PlanWarning(
            code="lock.missing", target=state.target, image=entry.source,
            message=f"not in the lock file ({entry.type}, {arch}); resolved to the remote's "
            "newest build now. Run `incus-images lock` to record it")])
    build = catalog.by_fingerprint(locked.fingerprint) if catalog else None
    if entry.auto_update:
        ahead = [(_version_of(fp, state, catalog), fp) for fp in managed
                 if fp != locked.fingerprint and _newer(fp, state, catalog, locked, build)]
        if ahead:
            fp = max(ahead)[1]
            return Resolved(catalog.by_fingerprint(fp) if catalog else None, fp)
    latest = newest is not None and newest.fingerprint == locked.fingerprint
    res = Resolved(build, locked.fingerprint, latest=latest, unavailable=(
        f"entry {entry.source} ({entry.type}, {arch}) on target {state.target!r} is locked "
        f"to {locked.fingerprint}{f' (version {locked.version})' if locked.version else ''}, "
        f"which remote {entry.remote!r} no longer serves and the store does not hold; run "
        f"`incus-images lock --upgrade {entry.source}` to lock a build the remote serves"))
    current = state.image(locked.fingerprint)
    if entry.auto_update and not latest and build is not None and (
            current is None or current.cached):
        res.warnings.append(PlanWarning(
            code="auto_update.no_source", target=state.target, image=entry.source,
            message=f"the locked build {short_fingerprint(locked.fingerprint)} is not the "
            "remote's newest, "
            "so it is pulled by fingerprint and the daemon records no source to auto-update "
            f"it from; `incus-images lock --upgrade {entry.source}` moves the lock"))
    return res


def _version_of(fp: str, state: TargetState, catalog: RemoteCatalog | None) -> str:
    """A build's version key: the remote's, else the daemon's ``serial`` property."""
    served = catalog.by_fingerprint(fp) if catalog else None
    if served is not None and served.version:
        return served.version
    img = state.image(fp)
    return img.properties.get("serial", "") if img else ""


def _newer(fp: str, state: TargetState, catalog: RemoteCatalog | None, locked: LockedBuild,
           locked_build: RemoteImage | None) -> bool:
    """Whether image ``fp`` is a newer build than the locked one: by build date when both
    are known and differ, else by version key (same-day simplestreams builds)."""
    served = catalog.by_fingerprint(fp) if catalog else None
    img = state.image(fp)
    mine = served.created_at if served else (img.created_at if img else None)
    theirs = locked_build.created_at if locked_build else None
    if mine is not None and theirs is not None and mine != theirs:
        return mine > theirs
    version = _version_of(fp, state, catalog)
    return bool(version and locked.version and version > locked.version)


def pull_alias(entry: EntrySpec, build: RemoteImage, host_arch: str, protocol: str) -> str:
    """The alias to ask the daemon for: the long ``alias/<arch>`` form for a foreign arch."""
    if protocol != "simplestreams" or build.architecture == host_arch:
        return entry.remote_alias
    suffix = "/" + build.remote_architecture
    alias = entry.remote_alias
    return alias if alias.endswith(suffix) else alias + suffix


def expiry_of(entry: EntrySpec, created_at: datetime | None) -> datetime | None:
    """The declared expiry: ``expires_at``, or ``expires_after`` counted from the build date."""
    if entry.expires_at is not None:
        return entry.expires_at
    if entry.expires_after_days is not None and created_at is not None:
        return created_at + timedelta(days=entry.expires_after_days)
    return None
