"""Aliases on one target: create, move (one update), redescribe, delete.

Pure.  Holds the contract's "Aliases" rules: moving an alias is one ``alias.move``;
an alias another owner manages is always a conflict; one held by an image nobody
manages is a conflict under ``alias_conflicts: fail`` and moved under ``take``;
aliases this owner recorded and no longer declares are deleted, others left alone.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from reconciler.core.builds import short
from reconciler.core.plan_changes import Stamp
from reconciler.core.plan_images import DeclaredAlias
from reconciler.core.plan_view import TargetView
from reconciler.model.changes import AliasDelete, TypedChange
from reconciler.model.observed import ObservedAlias
from reconciler.model.plan import FieldChange


@dataclass(frozen=True)
class AliasStep:
    """What one declared alias needs: a change, a conflict, or neither."""

    change: TypedChange | None = None
    conflict: str | None = None


def alias_changes(
    view: TargetView, declared: Mapping[str, DeclaredAlias], replaced: Collection[str],
    alias_conflicts: str,
) -> tuple[tuple[TypedChange, ...], tuple[str, ...]]:
    """Changes and conflicts for every declared alias, by name.

    ``replaced``: fingerprints of daemon-cached copies the plan deletes and pulls again;
    their aliases go with them, so an alias they hold is created afresh.
    """
    steps = [alias_step(view, decl, _holder(view, name, replaced), alias_conflicts)
             for name, decl in sorted(declared.items())]
    return (tuple(s.change for s in steps if s.change is not None),
            tuple(s.conflict for s in steps if s.conflict is not None))


def _holder(view: TargetView, name: str, replaced: Collection[str]) -> ObservedAlias | None:
    held = view.aliases.get(name)
    return None if held is None or held.target in replaced else held


def alias_step(view: TargetView, decl: DeclaredAlias, held: ObservedAlias | None,
               alias_conflicts: str) -> AliasStep:
    """One declared alias against the alias of that name in the store (``held``)."""
    stamp = Stamp.of(view.state)
    if held is None:
        return AliasStep(stamp.alias_create(f"declared by {decl.source}", alias=decl.name,
                                            to=decl.fingerprint, description=decl.description))
    if held.target == decl.fingerprint:
        if held.description == decl.description:
            return AliasStep()
        return AliasStep(stamp.alias_update(
            "description changed", alias=decl.name, fingerprint=decl.fingerprint,
            description=decl.description,
            fields={"description": FieldChange(from_=held.description, to=decl.description)}))
    return _move_step(view, decl, held, alias_conflicts)


def _move_step(view: TargetView, decl: DeclaredAlias, held: ObservedAlias,
               alias_conflicts: str) -> AliasStep:
    """An alias held by another image: moved when this owner manages it, or when it is
    nobody's and the policy is ``take``; a conflict otherwise."""
    listed = view.listed_by.get(decl.name, frozenset())
    others = listed - {view.owner}
    holder_owner = view.owner_of(held.target)
    if others or holder_owner not in (None, view.owner):
        who = sorted(others)[0] if others else holder_owner
        return AliasStep(conflict=f"target {view.target!r}: alias {decl.name!r} is managed by "
                                  f"owner {who!r} (image {short(held.target)})")
    ours = view.owner in listed or holder_owner == view.owner
    if not ours and alias_conflicts == "fail":
        return AliasStep(conflict=(
            f"target {view.target!r}: alias {decl.name!r} is held by image {held.target}, "
            "which this file does not manage (set policy.alias_conflicts: take to move it)"))
    reason = "follows the declared build" if ours else "taken from an unmanaged image"
    return AliasStep(Stamp.of(view.state).alias_move(
        reason, alias=decl.name, from_=held.target, to=decl.fingerprint,
        description=held.description))


def alias_deletions(view: TargetView, deleting: Collection[str],
                    declared: Collection[str]) -> tuple[AliasDelete, ...]:
    """``alias.delete`` for aliases this owner recorded on an image that stays, which are
    still on it and no longer declared; aliases added by hand are left in place."""
    stamp = Stamp.of(view.state)
    out: list[AliasDelete] = []
    for fp, a in view.mine.items():
        if fp in deleting or a.record is None:
            continue
        img = view.state.image(fp)
        on_image = {al.name for al in img.aliases} if img else set()
        out += [stamp.alias_delete("no longer declared", alias=name, from_=fp)
                for name in sorted(set(a.record.aliases) & on_image) if name not in declared]
    return tuple(out)
