"""What the lock file says and what ``incus-images lock`` changes in it (pure).

Invariants:

* :func:`resolve` is pure: pinned entries are never locked; an entry already
  locked keeps its build unless it is being upgraded; entries no longer declared
  drop out.
* :func:`changes` lists added, removed and moved locks in canonical order.
* :func:`hosts_needed` and :func:`remotes_needed` say exactly which targets
  ``lock`` must contact (a tracked entry with no ``architecture``, to learn the
  host's) and which remotes (an entry that is upgraded or not yet locked); nothing
  else is contacted.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.errors import IncusImagesError, PlanError
from reconciler.model.config import Config, EntrySpec
from reconciler.model.lock import LockedBuild, LockFile, LockKey, Locks
from reconciler.model.remote import RemoteCatalog

Selector = Callable[[EntrySpec], bool]
"""Whether ``lock`` moves an entry to its newest build (``--upgrade [SOURCE...]``)."""


def tracked(config: Config) -> tuple[EntrySpec, ...]:
    """The entries a lock file covers: every entry without a fingerprint pin."""
    return tuple(e for e in config.entries if not e.pinned)


def key_of(entry: EntrySpec, host_architectures: Mapping[str, str]) -> LockKey:
    """The lock key of ``entry``; no architecture means its target host's."""
    arch = entry.architecture or host_architectures[entry.target]
    return LockKey(entry.target, entry.source, entry.type, arch)


def resolve(
    config: Config,
    catalogs: Mapping[str, RemoteCatalog],
    host_architectures: Mapping[str, str],
    existing: Locks,
    upgrade: Selector,
) -> Locks:
    """The new locks: existing ones kept unless ``upgrade(entry)``, missing ones resolved.

    ``catalogs`` must hold the remote of every entry that is upgraded or not yet
    locked.  Raises ``PlanError`` for an entry its remote does not serve.
    """
    out: Locks = {}
    for entry in tracked(config):
        key = key_of(entry, host_architectures)
        if key in existing and not upgrade(entry):
            out[key] = existing[key]
            continue
        build = catalogs[entry.remote].resolve(entry.remote_alias, entry.type, key.architecture)
        if build is None:
            raise PlanError(
                f"remote {entry.remote!r} has no {entry.type} image {entry.remote_alias!r} "
                f"for architecture {key.architecture} (entry {entry.source}, "
                f"target {entry.target!r})")
        out[key] = LockedBuild(fingerprint=build.fingerprint, version=build.version,
                               size=build.size)
    return out


def hosts_needed(config: Config) -> list[str]:
    """The targets whose host architecture ``lock`` must learn (sorted)."""
    return sorted({e.target for e in tracked(config) if e.architecture is None})


def remotes_needed(config: Config, host_architectures: Mapping[str, str], existing: Locks,
                   upgrade: Selector) -> list[str]:
    """The remotes ``lock`` must read: those of entries upgraded or not yet locked (sorted)."""
    return sorted({e.remote for e in tracked(config)
                   if upgrade(e) or key_of(e, host_architectures) not in existing})


@dataclass(frozen=True)
class LockChange:
    """One line of what ``lock`` changed; ``before``/``after`` None for added/removed."""

    key: LockKey
    before: LockedBuild | None
    after: LockedBuild | None


def changes(before: Locks, after: Locks) -> list[LockChange]:
    """Added, removed and moved locks, in canonical order."""
    out = [LockChange(k, before.get(k), after.get(k))
           for k in set(before) | set(after) if before.get(k) != after.get(k)]
    return sorted(out, key=lambda c: c.key.sort_key())


@dataclass
class LockOutcome:
    """What ``lock`` did: the file, whether it was written, its content, what moved."""

    path: Path
    written: bool
    lock: LockFile
    changes: list[LockChange] = field(default_factory=list)


def upgrade_selector(config: Config, upgrade: bool, sources: Collection[str]) -> Selector:
    """Which entries ``--upgrade [SOURCE...]`` moves; unknown or pinned sources are errors."""
    if sources and not upgrade:
        raise IncusImagesError("name sources only with --upgrade (lock --upgrade SOURCE...)")
    if not upgrade:
        return lambda _e: False
    if not sources:
        return lambda _e: True
    declared = {e.source for e in tracked(config)}
    unknown = sorted(set(sources) - declared)
    if unknown:
        pinned = {e.source for e in config.entries if e.pinned}
        what = ("is pinned by fingerprint, not tracked" if unknown[0] in pinned
                else "is not a tracked source of the file")
        known = ", ".join(sorted(declared)) or "none"
        raise IncusImagesError(f"--upgrade {unknown[0]}: {what} (tracked sources: {known})")
    wanted = set(sources)
    return lambda e: e.source in wanted
