"""Diff the desired state against observed stores and produce a :class:`Plan`.

Pure: no I/O, no clock (``now`` is passed in), no environment.  The same inputs
always give the same plan, with changes in apply order.  Which build each entry
wants is decided in :mod:`reconciler.core.builds`, who owns what in
:mod:`reconciler.core.ownership`.  One target's plan (:func:`plan_target`) is a
composition of small pure steps, each in its own module and each returning values:

- :mod:`reconciler.core.plan_view`: the target indexed once; desired entries and
  recorded images are paired by one :class:`~reconciler.model.keys.EntryKey`;
- :mod:`reconciler.core.plan_images`: one entry (download, adoption, replaced builds,
  expiry, conflicts with another owner's image, requirement warnings);
- :mod:`reconciler.core.plan_fields`: ``image.update`` of the writable fields;
- :mod:`reconciler.core.plan_aliases`: alias create, move, update, delete;
- :mod:`reconciler.core.plan_store`: prune, ``policy.cached``, server settings, free
  space, images left alone;
- :mod:`reconciler.core.plan_changes`: constructors of each typed change; the steps
  return typed changes, turned into the plan's wire :class:`Change` values here.

Rules are the contract's "Semantics" section; each function states the ones it holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from reconciler.core.cluster import cluster_warnings
from reconciler.core.copies import Fates, copy_warnings, unchecked_notes
from reconciler.core.inventory import with_inventories
from reconciler.core.ownership import attribute
from reconciler.core.plan_aliases import alias_changes, alias_deletions
from reconciler.core.plan_changes import Stamp, deletion_changes, first_deletions
from reconciler.core.plan_images import plan_entry
from reconciler.core.plan_store import (
    prune,
    server_changes,
    space_warnings,
    stale_cached,
    untouched,
)
from reconciler.core.plan_view import view_of
from reconciler.errors import ConflictError, EmptyFileRefused, PlanError
from reconciler.model.changes import ImageDownload, TypedChange
from reconciler.model.config import CLUSTER_SERVER_KEYS, Config
from reconciler.model.lock import LockedBuild, LockKey
from reconciler.model.observed import Inventory, TargetState
from reconciler.model.plan import Change, Plan, PlanWarning, Untouched, summarize
from reconciler.model.remote import RemoteCatalog


@dataclass(frozen=True)
class TargetPlan:
    """One target's part of the plan, each part in the order it was made."""

    changes: tuple[TypedChange, ...]
    warnings: tuple[PlanWarning, ...]
    conflicts: tuple[str, ...]
    untouched: tuple[Untouched, ...]
    notes: tuple[str, ...]
    ownership: Inventory


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
    :func:`reconciler.core.builds.resolve_entry`).

    Raises ``ConflictError`` (every conflict, one per line), ``EmptyFileRefused``
    or ``PlanError`` (an entry that cannot be resolved, or two targets that reach
    one image store: :func:`check_distinct_stores`).

    ``states`` are the stores' observations; their ownership records are read here
    when the caller has not (:func:`~reconciler.core.inventory.with_inventories`).
    """
    states = {name: with_inventories(state) for name, state in states.items()}
    check_distinct_stores(states.values())
    check_cluster_keys(config.server, states.values())
    if not config.entries and not allow_empty:
        for state in states.values():
            owned = [fp for fp, a in attribute(state).items() if a.owner == config.owner]
            if owned:
                raise EmptyFileRefused(
                    f"{config.path} declares no images but owner {config.owner!r} manages "
                    f"{len(owned)} on target {state.target!r}; applying it would delete them "
                    "all. Pass --allow-empty if that is what you want."
                )
    changes: list[TypedChange] = []
    warnings: list[PlanWarning] = []
    untouched: list[Untouched] = []
    conflicts: list[str] = []
    notes: list[str] = []
    ownership: dict[str, Inventory] = {}
    for name in sorted(states):
        tp = plan_target(config, states[name], catalogs, now, locks)
        changes += tp.changes
        warnings += tp.warnings
        untouched += tp.untouched
        conflicts += tp.conflicts
        notes += tp.notes
        ownership[name] = tp.ownership
    if conflicts:
        raise ConflictError("\n".join(conflicts))
    ordered = tuple(sorted((c.wire() for c in changes), key=Change.sort_key))
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


def check_cluster_keys(server: Mapping[str, str], states: Iterable[TargetState]) -> None:
    """Refuse a cluster-only ``server:`` key (``CLUSTER_SERVER_KEYS``) on a standalone
    daemon: the daemon would store it and never act on it, so declaring it there is a
    mistake in the file.  Raises ``PlanError``, one line per target, in target order."""
    keys = [k for k in CLUSTER_SERVER_KEYS if k in server]
    problems = [
        f"target {s.target!r}: server key {key} applies to clusters only, and the daemon "
        f"{'at ' + s.url + ' ' if s.url else ''}is not clustered: remove {key} from "
        "`server:`, or this target from the file"
        for s in sorted(states, key=lambda s: s.target) if not s.clustered for key in keys]
    if problems:
        raise PlanError("\n".join(problems))


def plan_target(
    config: Config, state: TargetState, catalogs: Mapping[str, RemoteCatalog], now: datetime,
    locks: Mapping[LockKey, LockedBuild] | None = None,
) -> TargetPlan:
    """One target's plan: the steps below, composed in this order.

    1. each entry of the target, in file order
       (:func:`reconciler.core.plan_images.plan_entry`): download or adopt and
       update the image it wants, delete the builds it replaced or the images that
       expired;
    2. prune this owner's images that no entry keeps (or keep their records);
    3. aliases: create, move, redescribe the declared ones; delete the ones this owner
       no longer declares on images that stay;
    4. daemon-cached images unused past ``policy.cached``;
    5. server settings; 6. the free-space warning; 7. the broken copies ``--verify``
    found (``cluster.broken_copy``) and the members it could not check (notes);
    8. the images left alone; 9. the cluster's warnings
    (:func:`reconciler.core.cluster.cluster_warnings`).

    An image asked to be deleted twice is deleted once, with the first reason given.
    """
    view = view_of(state, config.owner)
    entries = tuple(
        plan_entry(view, entry, catalogs.get(entry.remote), locks,
                   config.remotes.get(entry.remote), now)
        for entry in config.entries_for(state.target))
    declared = {a.name: a for e in entries for a in e.aliases}
    keep = dict(e.keep for e in entries if e.keep is not None)
    entry_deletions = [d for e in entries for d in e.deletions]
    pruned, kept = prune(view, keep, {d.fingerprint for d in entry_deletions},
                         config.policy.prune)
    keep.update(kept)
    deleting = {d.fingerprint for d in (*entry_deletions, *pruned)}
    entry_changes = [c for e in entries for c in e.changes]
    aliases, alias_conflicts = alias_changes(
        view, declared,
        {c.fingerprint for c in entry_changes if isinstance(c, ImageDownload) and c.replace_cached},
        config.policy.alias_conflicts)
    alias_deletes = alias_deletions(view, deleting, declared)
    deletions = first_deletions(
        (*entry_deletions, *pruned,
         *stale_cached(view, keep, config.policy.cached.delete_unused_after_days, now)))
    server, server_conflicts = server_changes(view, config.server)
    changes = (*entry_changes, *deletion_changes(Stamp.of(state), deletions, state.instances),
               *aliases, *alias_deletes, *server)
    space = space_warnings(view, changes)
    broken = copy_warnings(view, Fates(
        repaired={c.fingerprint for c in entry_changes
                  if isinstance(c, ImageDownload) and c.replace_cached},
        deleted={d.fingerprint for d in deletions},
        wanted={e.keep[0] for e in entries if e.keep is not None}))
    return TargetPlan(
        changes=changes,
        warnings=(*(w for e in entries for w in e.warnings), *space, *broken,
                  *cluster_warnings(state)),
        conflicts=(*(c for e in entries for c in e.conflicts), *alias_conflicts,
                   *server_conflicts),
        untouched=untouched(view, keep, {d.fingerprint for d in deletions}),
        notes=(*(n for e in entries for n in e.notes), *unchecked_notes(state)),
        ownership=Inventory(owner=config.owner, project=state.effective_project, images=keep,
                            server=dict(config.server)),
    )
