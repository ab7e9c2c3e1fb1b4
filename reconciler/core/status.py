"""The rows of ``incus-images status``: every image of every target, who manages it, and what
waits upstream (pure: observed states, catalogs and locks in, a :class:`StatusReport` out).

Reading the stores and remotes is ``reconciler.pipeline.gather_status``.  Invariants:

* Every image of every observed target appears once, whoever manages it; nothing
  is changed anywhere (status only reads).
* ``managed`` is true only for the file's owner; ``owner`` comes from the same
  attribution the planner uses (:func:`reconciler.core.ownership.attribute`).
* ``update_available`` is None whenever it cannot be known (``--offline``, a
  remote that could not be read, an image with no source); for an image of one of
  this owner's entries it is exactly "the plan would want another build"
  (:func:`reconciler.core.builds.resolve_entry`, so pins and locks count), which makes
  it false for a pinned or locked entry that matches its pin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.core.builds import resolve_entry
from reconciler.core.cluster import member_problem
from reconciler.core.ownership import Attribution, attribute
from reconciler.model.config import Config, EntrySpec, RemoteSpec
from reconciler.model.keys import EntryKey
from reconciler.model.lock import Locks
from reconciler.model.observed import ObservedImage, RecordedImage, TargetState
from reconciler.model.remote import RemoteCatalog
from reconciler.model.status import (
    BrokenCopyStatus,
    ImageStatus,
    MemberStatus,
    Provenance,
    StatusReport,
    TargetStatus,
)
from reconciler.redact import redact_url, without_userinfo


def _norm(url: str) -> str:
    return url.rstrip("/")


def remote_for_server(config: Config, server: str) -> RemoteSpec | None:
    """The declared remote whose URL is ``server`` (the daemon's recorded source), if any."""
    for remote in sorted(config.remotes.values(), key=lambda r: r.name):
        if _norm(without_userinfo(remote.url)) == _norm(without_userinfo(server)):
            return remote
    return None


def recorded_source(config: Config, img: ObservedImage) -> str | None:
    """``remote:alias`` for a source on a declared remote, ``server:alias`` otherwise (the
    server's URL shown without its credentials, should the daemon have recorded some)."""
    src = img.update_source
    if src is None or not src.alias:
        return None
    remote = remote_for_server(config, src.server)
    return f"{remote.name if remote else redact_url(_norm(src.server))}:{src.alias}"


def provenance_of(record: RecordedImage | None) -> Provenance | None:
    """The record's provenance, read defensively (older records have none)."""
    if record is None:
        return None
    prov = getattr(record, "provenance", None)
    holder = prov if prov is not None else record
    values = {k: getattr(holder, k, None) for k in ("commit", "repository", "path", "dirty")}
    if values["commit"] is None and values["repository"] is None:
        return None
    return Provenance.model_validate(values)


def shape(
    config: Config,
    states: Mapping[str, TargetState],
    catalogs: Mapping[str, RemoteCatalog] | None,
    locks: Locks | None,
) -> StatusReport:
    """The status of every target in ``states``; ``catalogs`` None means offline."""
    return StatusReport(targets={
        name: _target(config, states[name], catalogs, locks) for name in sorted(states)})


def _target(config: Config, state: TargetState, catalogs: Mapping[str, RemoteCatalog] | None,
            locks: Locks | None) -> TargetStatus:
    attrs = attribute(state)
    entries: dict[EntryKey, EntrySpec] = {}
    for e in config.entries_for(state.target):
        entries.setdefault(e.key(state.host_architecture), e)
    managed_by_identity: dict[EntryKey, list[str]] = {}
    for fp, a in sorted(attrs.items()):
        if a.owner == config.owner and a.record is not None:
            ident = EntryKey(state.target, a.record.source, a.record.type,
                             a.record.architecture)
            managed_by_identity.setdefault(ident, []).append(fp)
    images = [
        _image(config, state, img, attrs[img.fingerprint], entries, managed_by_identity,
               catalogs, locks)
        for img in state.images
    ]
    images.sort(key=lambda i: (not i.managed, i.owner is None, i.owner or "", i.source or "",
                               i.fingerprint))
    declared = config.targets.get(state.target)
    url = state.url if declared is not None and declared.urls else None
    found = state.verification
    if found is None:
        return TargetStatus(project=state.project, images=images, url=url,
                            members=_members(state))
    return TargetStatus(
        project=state.project, images=images, url=url, members=_members(state),
        broken_copies=[BrokenCopyStatus(fingerprint=b.fingerprint, member=b.member,
                                        detail=b.detail)
                       for b in found.broken if attrs.get(b.fingerprint) is not None],
        unchecked_members=dict(found.unchecked))


def _members(state: TargetState) -> list[MemberStatus] | None:
    """A clustered target's members with their health (None: not a cluster)."""
    if not state.clustered:
        return None
    return [MemberStatus(name=m.name, status=m.status, url=m.url, healthy=m.healthy,
                         problem=None if m.healthy else member_problem(m))
            for m in state.members]


def _image(
    config: Config, state: TargetState, img: ObservedImage, a: Attribution,
    entries: Mapping[EntryKey, EntrySpec],
    managed_by_identity: Mapping[EntryKey, list[str]],
    catalogs: Mapping[str, RemoteCatalog] | None, locks: Locks | None,
) -> ImageStatus:
    managed = a.owner == config.owner
    entry = None
    ident = None
    if managed and a.record is not None:
        ident = EntryKey(state.target, a.record.source, a.record.type, a.record.architecture)
        entry = entries.get(ident)
    source = a.record.source if managed and a.record is not None else recorded_source(config, img)
    update: bool | None = None
    if catalogs is not None:
        if entry is not None and ident is not None:
            catalog = catalogs.get(entry.remote)
            if catalog is not None:
                res = resolve_entry(entry, ident.architecture, catalog, locks, state,
                                    managed_by_identity.get(ident, []))
                update = None if res.wanted is None else res.wanted != img.fingerprint
        else:
            update = _newer_upstream(config, img, a, managed, catalogs)
    return ImageStatus(
        fingerprint=img.fingerprint, managed=managed, owner=a.owner, cached=img.cached,
        aliases=sorted(al.name for al in img.aliases), source=source,
        auto_update=img.auto_update, expires_at=img.expires_at, last_used_at=img.last_used_at,
        size=img.size, update_available=update, provenance=provenance_of(a.record))


def _newer_upstream(config: Config, img: ObservedImage, a: Attribution, managed: bool,
                    catalogs: Mapping[str, RemoteCatalog]) -> bool | None:
    """For an image no entry of this file wants: does its source name another build now?"""
    remote_name: str | None = None
    alias = ""
    if img.update_source is not None and img.update_source.alias:
        remote = remote_for_server(config, img.update_source.server)
        remote_name, alias = (remote.name if remote else None), img.update_source.alias
    elif managed and a.record is not None and ":" in a.record.source:
        remote_name, alias = a.record.source.split(":", 1)
    catalog = catalogs.get(remote_name) if remote_name else None
    if catalog is None:
        return None
    arch = img.architecture or (a.record.architecture if a.record else "")
    newest = catalog.resolve(alias, img.type, arch)
    if newest is None:
        return None
    return newest.fingerprint != img.fingerprint


@dataclass
class StatusRun:
    """What ``pipeline.gather_status`` found: the report, and remotes that could not be read."""

    report: StatusReport
    notes: list[str] = field(default_factory=list)
