"""What the planner reads from one target, indexed once: the inputs of every plan step.

An entry is known by its :class:`~reconciler.model.keys.EntryKey` (target, source, type,
architecture),
never by a fingerprint (the contract's "Identity"); the desired entries and this
owner's recorded images are paired by that one key.  Everything here is immutable:
the plan steps in :mod:`reconciler.core.plan_images`, :mod:`reconciler.core.plan_aliases`
and :mod:`reconciler.core.plan_store` read a :class:`TargetView` and return values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from reconciler.core.ownership import Attribution, attribute
from reconciler.model.config import EntrySpec
from reconciler.model.keys import EntryKey
from reconciler.model.observed import ObservedAlias, RecordedImage, TargetState


def entry_key(entry: EntrySpec, host_architecture: str) -> EntryKey:
    """An entry's key; without an architecture it takes the target's host architecture,
    so one entry and the record of the image it landed share one key."""
    return entry.key(host_architecture)


def record_key(record: RecordedImage, target: str) -> EntryKey:
    """The key of the entry whose image ``record`` describes, on ``target``."""
    return EntryKey(target, record.source, record.type, record.architecture)


@dataclass(frozen=True)
class TargetView:
    """One target as the planner sees it for ``owner``.

    ``attrs``: every image's attribution (:func:`reconciler.core.ownership.attribute`);
    ``mine``: the ones ``owner`` manages, sorted by fingerprint; ``managed``: the
    fingerprints of ``owner``'s recorded images per :class:`EntryKey`, sorted;
    ``aliases``: every alias in the store by name; ``listed_by``: which owners'
    inventories list each alias name.
    """

    owner: str
    state: TargetState
    attrs: Mapping[str, Attribution]
    mine: Mapping[str, Attribution]
    managed: Mapping[EntryKey, tuple[str, ...]]
    aliases: Mapping[str, ObservedAlias]
    listed_by: Mapping[str, frozenset[str]]

    @property
    def target(self) -> str:
        return self.state.target

    def owner_of(self, fingerprint: str) -> str | None:
        """The owner managing ``fingerprint`` (None: nobody, or not in the store)."""
        found = self.attrs.get(fingerprint)
        return found.owner if found is not None else None


def view_of(state: TargetState, owner: str) -> TargetView:
    """Index ``state`` for ``owner`` (pure)."""
    attrs = attribute(state)
    mine = {fp: a for fp, a in sorted(attrs.items()) if a.owner == owner}
    managed: dict[EntryKey, list[str]] = {}
    for fp, a in mine.items():
        if a.record is not None:
            managed.setdefault(record_key(a.record, state.target), []).append(fp)
    listed_by: dict[str, set[str]] = {}
    for inv_owner, inv in state.inventories.items():
        for name in inv.aliases:
            listed_by.setdefault(name, set()).add(inv_owner)
    return TargetView(
        owner=owner, state=state,
        attrs=MappingProxyType(attrs), mine=MappingProxyType(mine),
        managed=MappingProxyType({k: tuple(v) for k, v in managed.items()}),
        aliases=MappingProxyType(state.alias_targets()),
        listed_by=MappingProxyType({k: frozenset(v) for k, v in listed_by.items()}),
    )
