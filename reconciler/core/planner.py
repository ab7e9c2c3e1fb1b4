"""Diff the desired state against observed stores and produce a :class:`Plan`.

Pure: no I/O, no clock (``now`` is passed in), no environment.  The same inputs
always give the same plan, with changes in apply order.  Which build each entry
wants is decided in :mod:`reconciler.core.builds`, who owns what in
:mod:`reconciler.core.ownership`.  Rules are the contract's "Semantics" section; each
function below states the ones it holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from reconciler.core import requirements
from reconciler.core.builds import expiry_of, iso, pull_alias, resolve_entry, same_time, short
from reconciler.core.ownership import Attribution, attribute
from reconciler.errors import ConflictError, EmptyFileRefused, PlanError
from reconciler.model.config import Config, EntrySpec
from reconciler.model.lock import LockedBuild, LockKey
from reconciler.model.observed import Inventory, ObservedImage, RecordedImage, TargetState
from reconciler.model.plan import (
    Action,
    Change,
    FieldChange,
    Plan,
    PlanWarning,
    PullSource,
    Untouched,
    Writable,
    summarize,
)
from reconciler.model.remote import RemoteCatalog, RemoteImage

SERVER_DEFAULTS: dict[str, str] = {
    "images.auto_update_interval": "6",
    "images.auto_update_cached": "true",
    "images.remote_cache_expiry": "10",
    "images.compression_algorithm": "gzip",
}

Identity = tuple[str, str, str]
"""(source, type, canonical architecture): an entry's identity on one target."""


@dataclass
class _TargetPlan:
    changes: list[Change] = field(default_factory=list)
    warnings: list[PlanWarning] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    untouched: list[Untouched] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ownership: Inventory | None = None


def make_plan(
    config: Config,
    catalogs: Mapping[str, RemoteCatalog],
    states: Mapping[str, TargetState],
    *,
    now: datetime,
    allow_empty: bool = False,
    locks: Mapping[LockKey, LockedBuild] | None = None,
) -> Plan:
    """The plan that brings every target in ``states`` to ``config``.

    ``locks`` is the lock file's content (None: there is no lock file): a tracked
    entry then wants its locked build instead of the remote's newest (see
    :func:`resolve_entry`).

    Raises ``ConflictError`` (every conflict, one per line), ``EmptyFileRefused``
    or ``PlanError`` (an entry that cannot be resolved, or two targets that reach
    one image store: :func:`check_distinct_stores`).
    """
    check_distinct_stores(states.values())
    if not config.entries and not allow_empty:
        for state in states.values():
            owned = [fp for fp, a in attribute(state).items() if a.owner == config.owner]
            if owned:
                raise EmptyFileRefused(
                    f"{config.path} declares no images but owner {config.owner!r} manages "
                    f"{len(owned)} on target {state.target!r}; applying it would delete them "
                    "all. Pass --allow-empty if that is what you want."
                )
    changes: list[Change] = []
    warnings: list[PlanWarning] = []
    untouched: list[Untouched] = []
    conflicts: list[str] = []
    notes: list[str] = []
    ownership: dict[str, Inventory] = {}
    for name in sorted(states):
        tp = _plan_target(config, states[name], catalogs, now, locks)
        changes += tp.changes
        warnings += tp.warnings
        untouched += tp.untouched
        conflicts += tp.conflicts
        notes += tp.notes
        if tp.ownership is not None:
            ownership[name] = tp.ownership
    if conflicts:
        raise ConflictError("\n".join(conflicts))
    ordered = tuple(sorted(changes, key=Change.sort_key))
    return Plan(
        owner=config.owner,
        changes=ordered,
        summary=summarize(ordered),
        warnings=tuple(sorted(warnings, key=lambda w: (w.target, w.image, w.code))),
        untouched=tuple(untouched),
        notes=tuple(dict.fromkeys(notes)),
        ownership={t: inv for t, inv in ownership.items() if any(c.target == t for c in ordered)},
    )


def check_distinct_stores(
    states: Iterable[TargetState], *, involving: Iterable[str] | None = None
) -> None:
    """Refuse two targets that reach one image store: one daemon, one effective project.

    One owner keeps one record per store, so each of the two would prune what only
    the other declares, and every apply would undo the last.  A project with
    ``features.images=false`` uses the default project's images, which makes it the
    same store as the default project.  Raises ``PlanError``, one line per store;
    with ``involving``, only for stores that one of those targets reaches.
    """
    wanted = None if involving is None else set(involving)
    by_store: dict[tuple[str, str], list[TargetState]] = {}
    for state in states:
        if state.server_fingerprint:
            key = (state.server_fingerprint, state.effective_project)
            by_store.setdefault(key, []).append(state)
    problems: list[str] = []
    for (_, project), group in sorted(by_store.items()):
        if len(group) < 2 or (wanted is not None and wanted.isdisjoint(
                s.target for s in group)):
            continue
        group.sort(key=lambda s: s.target)
        names = " and ".join(f"{s.target!r} (project {s.project!r})" for s in group)
        why = ""
        if any(s.project != project for s in group):
            why = (f"; a project with features.images=false uses the images of project "
                   f"{project!r}")
        problems.append(f"targets {names} reach one image store, the images of project "
                        f"{project!r} of one daemon{why}: keep one of them in the file")
    if problems:
        raise PlanError("\n".join(problems))


def _plan_target(  # noqa: C901
    config: Config, state: TargetState, catalogs: Mapping[str, RemoteCatalog], now: datetime,
    locks: Mapping[LockKey, LockedBuild] | None = None,
) -> _TargetPlan:
    owner = config.owner
    tp = _TargetPlan()
    attrs = attribute(state)
    mine: dict[str, Attribution] = {fp: a for fp, a in attrs.items() if a.owner == owner}
    by_identity: dict[Identity, list[str]] = {}
    for fp, a in sorted(mine.items()):
        if a.record is not None:
            key = (a.record.source, a.record.type, a.record.architecture)
            by_identity.setdefault(key, []).append(fp)
    aliases_now = state.alias_targets()
    listed_by: dict[str, set[str]] = {}
    for inv_owner, inv in state.inventories.items():
        for name in inv.aliases:
            listed_by.setdefault(name, set()).add(inv_owner)

    def change(action: Action, reason: str, **kw: object) -> Change:
        return Change.model_validate(
            {"action": action, "target": state.target, "project": state.effective_project,
             "reason": reason, **kw}
        )

    keep: dict[str, RecordedImage] = {}
    deleting: set[str] = set()
    declared_aliases: dict[str, tuple[str, str, EntrySpec]] = {}

    def delete(fp: str, reason: str, source: str | None) -> None:
        if fp in deleting:
            return
        deleting.add(fp)
        tp.changes.append(change(Action.IMAGE_DELETE, reason, fingerprint=fp, source=source,
                                 instances=list(state.instances.get(fp, ()))))

    for entry in config.entries_for(state.target):
        arch = entry.architecture or state.host_architecture
        ident: Identity = (entry.source, entry.type, arch)
        catalog = catalogs.get(entry.remote)
        res = resolve_entry(entry, arch, catalog, locks, state, by_identity.get(ident, []))
        build, wanted = res.build, res.wanted
        tp.warnings += res.warnings
        if wanted is None:
            raise PlanError(
                f"remote {entry.remote!r} has no {entry.type} image {entry.remote_alias!r} "
                f"for architecture {arch} (entry {entry.source}, target {state.target!r})"
            )
        current = state.image(wanted)
        created = current.created_at if current else (build.created_at if build else None)
        expiry = expiry_of(entry, created)
        olds = [fp for fp in by_identity.get(ident, []) if fp != wanted]
        if expiry is not None and expiry <= now:
            for fp in by_identity.get(ident, []):
                delete(fp, f"expired on {iso(expiry)}", entry.source)
            continue
        record = RecordedImage(
            source=entry.source, type=entry.type, architecture=arch,
            aliases=tuple(a.name for a in entry.aliases),
            properties=tuple(sorted(entry.properties)), expires_at=expiry is not None,
        )
        keep[wanted] = record
        _preflight(entry, build, current, state, tp)
        owner_now = attrs[wanted].owner if current else None
        if current is not None and owner_now not in (None, owner):
            tp.conflicts.append(
                f"target {state.target!r}: {entry.source} resolves to {short(wanted)}, which "
                f"owner {owner_now!r} manages; two owners cannot share one image"
            )
            continue
        if current is None or current.cached:
            if build is None:
                raise PlanError(res.unavailable or (
                    f"pinned fingerprint {wanted} of {entry.source} is neither in target "
                    f"{state.target!r} nor served by remote {entry.remote!r}"
                ))
            tp.changes.append(_download(entry, build, wanted, expiry, state, catalog, change,
                                        record, replace_cached=current is not None,
                                        latest=res.latest))
            remote = config.remotes.get(entry.remote)
            if entry.auto_update and not entry.pinned and remote and not remote.daemon_can_pull:
                tp.warnings.append(PlanWarning(
                    code="auto_update.no_source", target=state.target, image=entry.source,
                    message=f"image {short(wanted)} will be uploaded by incus-images, because "
                    f"remote {entry.remote!r} needs credentials that are never handed to the "
                    "daemon; so the daemon cannot auto-update it, and incus-images brings "
                    "newer builds at each apply instead"))
        else:
            if owner_now is None or attrs[wanted].in_flight:
                why = ("landed by an interrupted apply, not yet recorded"
                       if attrs[wanted].in_flight else "managed by nobody")
                tp.changes.append(change(Action.IMAGE_ADOPT,
                                         "present in the store with the declared fingerprint, "
                                         + why, fingerprint=wanted,
                                         source=entry.source, record=record))
            prior = attrs[wanted].record if owner_now == owner else None
            update = _update(entry, current, prior, expiry, change, record)
            if update is not None:
                tp.changes.append(update)
            if entry.auto_update and not entry.pinned and current.update_source is None:
                tp.warnings.append(PlanWarning(
                    code="auto_update.no_source", target=state.target, image=entry.source,
                    message=f"image {short(wanted)} has no source recorded by the daemon, so "
                    "the daemon cannot auto-update it; incus-images brings newer builds at "
                    "each apply instead"))
        for decl in entry.aliases:
            declared_aliases[decl.name] = (wanted, decl.description, entry)
        for fp in olds:
            delete(fp, f"replaced by the newer build {short(wanted)}", entry.source)

    # Aliases: create, move (one update), redescribe.
    # A cached copy is deleted before it is pulled again, and its aliases with it.
    replaced = {c.fingerprint for c in tp.changes if c.replace_cached}
    for name, (fp, description, entry) in sorted(declared_aliases.items()):
        held = aliases_now.get(name)
        if held is not None and held.target in replaced:
            held = None
        if held is None:
            tp.changes.append(change(Action.ALIAS_CREATE, f"declared by {entry.source}",
                                     alias=name, to=fp, description=description))
            continue
        if held.target == fp:
            if held.description != description:
                tp.changes.append(change(Action.ALIAS_UPDATE, "description changed", alias=name,
                                         fingerprint=fp, description=description,
                                         fields={"description": FieldChange(
                                             from_=held.description, to=description)}))
            continue
        others = listed_by.get(name, set()) - {owner}
        holder_owner = attrs[held.target].owner if held.target in attrs else None
        if others or holder_owner not in (None, owner):
            who = sorted(others)[0] if others else holder_owner
            tp.conflicts.append(f"target {state.target!r}: alias {name!r} is managed by owner "
                                f"{who!r} (image {short(held.target)})")
            continue
        ours = owner in listed_by.get(name, set()) or holder_owner == owner
        if not ours and config.policy.alias_conflicts == "fail":
            tp.conflicts.append(
                f"target {state.target!r}: alias {name!r} is held by image {held.target}, which "
                "this file does not manage (set policy.alias_conflicts: take to move it)")
            continue
        reason = "follows the declared build" if ours else "taken from an unmanaged image"
        tp.changes.append(change(Action.ALIAS_MOVE, reason, alias=name, from_=held.target, to=fp,
                                 description=held.description))

    # Prune: this owner's images that no entry keeps.
    for fp, a in sorted(mine.items()):
        if fp in keep or fp in deleting:
            continue
        if config.policy.prune:
            delete(fp, "no longer declared", a.record.source if a.record else None)
        elif a.record is not None:
            keep[fp] = a.record

    # Aliases this owner manages and no longer declares (on images that stay).
    for fp, a in sorted(mine.items()):
        if fp in deleting or a.record is None:
            continue
        img = state.image(fp)
        on_image = {al.name for al in img.aliases} if img else set()
        for name in sorted(set(a.record.aliases) & on_image):
            if name not in declared_aliases:
                tp.changes.append(change(Action.ALIAS_DELETE, "no longer declared", alias=name,
                                         from_=fp))

    # Cached images the daemon downloaded for instances, by the repository's schedule.
    days = config.policy.cached.delete_unused_after_days
    if days is not None:
        for img in state.images:
            a = attrs[img.fingerprint]
            if a.owner is None and img.cached and img.fingerprint not in keep:
                used = img.last_used_at or img.uploaded_at
                if used is not None and used + timedelta(days=days) < now:
                    delete(img.fingerprint, f"daemon-cached, unused since {iso(used)} "
                           f"(policy.cached.delete_unused_after: {days}d)", None)

    tp.changes += _server_changes(config, state, change, tp.conflicts)
    _space(state, tp)

    for img in state.images:
        a = attrs[img.fingerprint]
        if a.owner != owner and img.fingerprint not in deleting and img.fingerprint not in keep:
            tp.untouched.append(Untouched(target=state.target, fingerprint=img.fingerprint,
                                          owner=a.owner, cached=img.cached,
                                          aliases=tuple(al.name for al in img.aliases)))
    tp.ownership = Inventory(owner=owner, project=state.effective_project, images=keep,
                             server=dict(config.server))
    return tp


def _download(
    entry: EntrySpec, build: RemoteImage, wanted: str, expiry: datetime | None,
    state: TargetState, catalog: RemoteCatalog | None, change: _ChangeFactory,
    record: RecordedImage, *, replace_cached: bool, latest: bool = True,
) -> Change:
    """Pull by alias only a tracked entry's newest build (so the daemon records the
    alias as the image's source); a pin or an older locked build is pulled by fingerprint."""
    assert catalog is not None
    if entry.pinned or build.fingerprint != wanted or not latest:
        pull = PullSource(remote=entry.remote, server=catalog.url, protocol=catalog.protocol,
                          fingerprint=wanted, image_type=entry.type, files=build.files)
    else:
        pull = PullSource(remote=entry.remote, server=catalog.url, protocol=catalog.protocol,
                          alias=pull_alias(entry, build, state.host_architecture,
                                            catalog.protocol),
                          image_type=entry.type, files=build.files)
    writable = Writable(
        auto_update=entry.auto_update and not entry.pinned, public=entry.public,
        profiles=entry.profiles, properties=dict(entry.properties),
        expires_at=expiry if expiry is not None else build.expires_at,
    )
    reason = ("declared, present only as a daemon-cached copy (deleted and pulled again)"
              if replace_cached else "declared, not in store")
    return change(Action.IMAGE_DOWNLOAD, reason, fingerprint=wanted, source=entry.source,
                  size=build.size, pull=pull, writable=writable, record=record,
                  replace_cached=True if replace_cached else None)


class _ChangeFactory(Protocol):
    """The closure in :func:`_plan_target` that stamps target and project on a change."""

    def __call__(self, action: Action, reason: str, **kw: object) -> Change: ...


def _update(  # noqa: C901
    entry: EntrySpec, img: ObservedImage, prior: RecordedImage | None,
    expiry: datetime | None, change: _ChangeFactory, record: RecordedImage,
) -> Change | None:
    """``image.update`` restoring the declared writable fields, or None when they hold.

    Properties: declared keys must carry their values; keys this owner set before
    (``prior``) and no longer declares are removed; other keys are left alone.
    Expiry: a declared one is written; one this owner wrote and the file dropped is
    cleared; one the daemon took from the remote is left alone.
    """
    auto_update = entry.auto_update and not entry.pinned
    fields: dict[str, FieldChange] = {}
    if img.auto_update != auto_update:
        fields["auto_update"] = FieldChange(from_=img.auto_update, to=auto_update)
    if img.public != entry.public:
        fields["public"] = FieldChange(from_=img.public, to=entry.public)
    if tuple(img.profiles) != tuple(entry.profiles):
        fields["profiles"] = FieldChange(from_=list(img.profiles), to=list(entry.profiles))
    props: dict[str, str | None] = {}
    for key, value in sorted(entry.properties.items()):
        if img.properties.get(key) != value:
            props[key] = value
    for key in sorted(set(prior.properties if prior else ()) - set(entry.properties)):
        if key in img.properties:
            props[key] = None
    if props:
        fields["properties"] = FieldChange(
            from_={k: img.properties.get(k) for k in props}, to=props)
    target_expiry = img.expires_at
    if expiry is not None:
        target_expiry = expiry
    elif prior is not None and prior.expires_at:
        target_expiry = None
    if not same_time(img.expires_at, target_expiry):
        fields["expires_at"] = FieldChange(from_=iso(img.expires_at), to=iso(target_expiry))
    if not fields:
        return None
    writable = Writable(auto_update=auto_update, public=entry.public, profiles=entry.profiles,
                        properties=props, expires_at=target_expiry)
    return change(Action.IMAGE_UPDATE, "declared fields differ", fingerprint=img.fingerprint,
                  source=entry.source, fields=fields, writable=writable, record=record)


def _preflight(entry: EntrySpec, build: RemoteImage | None, current: ObservedImage | None,
               state: TargetState, tp: _TargetPlan) -> None:
    """Requirement warnings for an image the plan downloads or keeps: the remote's
    ``requirements`` before download, the image's ``requirements.*`` properties after."""
    reqs = dict(build.requirements) if build else {}
    if current is not None:
        reqs.update(requirements.from_properties(current.properties))
    if not reqs:
        return
    found, notes = requirements.check(reqs, type_=entry.type, profile_names=entry.profiles,
                                      profiles=state.profiles, kernel_cgroup=state.kernel_cgroup)
    for f in found:
        tp.warnings.append(PlanWarning(code=f.code, target=state.target, image=entry.source,
                                       message=f.message))
    tp.notes += [f"target {state.target!r}, {entry.source}: {n}" for n in notes]


def _space(state: TargetState, tp: _TargetPlan) -> None:
    """``storage.space`` when the planned downloads exceed the image store's free space
    (only where the daemon exposes it)."""
    downloads = [c for c in tp.changes if c.action is Action.IMAGE_DOWNLOAD]
    need = sum(c.size or 0 for c in downloads)
    free = state.images_free_bytes
    if free is None or not downloads or need <= free:
        return
    tp.warnings.append(PlanWarning(
        code="storage.space", target=state.target,
        image=", ".join(sorted({c.source or "" for c in downloads})),
        message=f"the planned downloads need {need} bytes but the image store has {free} "
                "bytes free; free space or enlarge storage.images_volume"))


def _server_changes(
    config: Config, state: TargetState, change: _ChangeFactory, conflicts: list[str]
) -> list[Change]:
    """``server.update`` per declared key that differs; another owner's different value is a
    conflict.  Keys are daemon-wide, so every target on one daemon sees the same ones."""
    out: list[Change] = []
    for key, value in sorted(config.server.items()):
        current = state.server_config.get(key, SERVER_DEFAULTS.get(key, ""))
        for other, inv in sorted(state.inventories.items()):
            if other != config.owner and inv.server.get(key, value) != value:
                conflicts.append(f"target {state.target!r}: server setting {key} is set to "
                                 f"{inv.server[key]!r} by owner {other!r}; this file wants "
                                 f"{value!r}")
        if current != value:
            out.append(change(Action.SERVER_UPDATE, "declared server setting differs",
                              fields={key: FieldChange(from_=current, to=value)}))
    return out
