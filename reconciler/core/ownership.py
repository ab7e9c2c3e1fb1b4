"""Who manages which image on a target, decided from the target alone.

An image is owner O's when its fingerprint is in O's inventory, or when it is in
nobody's inventory and every owner whose inventory lists one of its aliases is O,
and that alias's recorded image is gone from the store (the signature of the
daemon's auto-update, which moves aliases to the new build), or when it is in
nobody's inventory and matches a pull by alias that O had in flight (see
:class:`reconciler.model.observed.PendingPull`).  An image belongs to at most one
owner.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.model.observed import ObservedImage, RecordedImage, TargetState


@dataclass(frozen=True)
class Attribution:
    """``owner`` is None for nobody's images; ``record`` is the inventory entry that
    describes the image (for an auto-updated successor: its predecessor's)."""

    owner: str | None
    record: RecordedImage | None
    successor_of: str | None = None
    in_flight: bool = False
    """Attributed through a pull the owner had in flight, not through its records."""


def attribute(state: TargetState) -> dict[str, Attribution]:
    """Attribution of every image in ``state``, keyed by fingerprint."""
    present = {img.fingerprint for img in state.images}
    by_fp: dict[str, tuple[str, RecordedImage]] = {}
    for owner in sorted(state.inventories):
        for fp, rec in state.inventories[owner].images.items():
            by_fp.setdefault(fp, (owner, rec))
    # alias name -> (owner, recorded fp, record) for records whose image is gone
    orphan_alias: dict[str, list[tuple[str, str, RecordedImage]]] = {}
    listed_by: dict[str, set[str]] = {}
    for owner in sorted(state.inventories):
        for fp, rec in state.inventories[owner].images.items():
            for name in rec.aliases:
                listed_by.setdefault(name, set()).add(owner)
                if fp not in present:
                    orphan_alias.setdefault(name, []).append((owner, fp, rec))
    result: dict[str, Attribution] = {}
    for img in state.images:
        if img.fingerprint in by_fp:
            owner, rec = by_fp[img.fingerprint]
            result[img.fingerprint] = Attribution(owner, rec)
            continue
        found = _by_alias(img, listed_by, orphan_alias)
        if found.owner is None:
            found = _by_pending_pull(img, state)
        result[img.fingerprint] = found
    return result


def _by_pending_pull(img: ObservedImage, state: TargetState) -> Attribution:
    source = img.update_source
    if source is None:
        return Attribution(None, None)
    for owner in sorted(state.inventories):
        for pull in state.inventories[owner].pending:
            if (pull.server, pull.alias) == (source.server, source.alias) and \
                    img.fingerprint not in pull.before:
                return Attribution(owner, pull.record, in_flight=True)
    return Attribution(None, None)


def _by_alias(
    img: ObservedImage,
    listed_by: dict[str, set[str]],
    orphan_alias: dict[str, list[tuple[str, str, RecordedImage]]],
) -> Attribution:
    names = [a.name for a in img.aliases]
    owners: set[str] = set()
    for name in names:
        owners |= listed_by.get(name, set())
    if len(owners) != 1:
        return Attribution(None, None)
    (owner,) = owners
    for name in names:
        for rec_owner, fp, rec in orphan_alias.get(name, []):
            if rec_owner == owner and rec.type == img.type:
                return Attribution(owner, rec, successor_of=fp)
    return Attribution(None, None)
