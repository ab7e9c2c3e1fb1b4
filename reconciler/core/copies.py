"""Broken copies found by ``--verify``: which images to check, which to repair, what to say.

Pure: everything is read from the observation (``TargetState.verification``, which the
pipeline fills in only under ``--verify``); nothing here sends a request.

Invariants:

* Only images this owner manages are checked (:func:`managed_fingerprints`).
* A broken image is repaired (deleted and downloaded again, the same build) only when
  every member of the target is healthy, this owner manages it and an entry still
  wants it (:func:`repair_reason`); otherwise the plan only warns.
* Every broken copy of a managed image gives one ``cluster.broken_copy`` warning naming
  the member (:func:`copy_warnings`); every member ``--verify`` could not check gives a
  note (:func:`unchecked_notes`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from reconciler.core.builds import short
from reconciler.core.ownership import attribute
from reconciler.core.plan_view import TargetView
from reconciler.model.observed import BrokenCopy, TargetState
from reconciler.model.plan import PlanWarning

BROKEN_COPY = "cluster.broken_copy"
REPAIR = "broken copy on {where}: deleted and downloaded again"


def managed_fingerprints(state: TargetState, owner: str) -> tuple[str, ...]:
    """The images ``owner`` manages on ``state`` (read with its inventories), sorted."""
    return tuple(sorted(fp for fp, a in attribute(state).items() if a.owner == owner))


def where(member: str) -> str:
    """``member m2``, or ``the daemon`` for a standalone daemon's one copy ("")."""
    return f"member {member}" if member else "the daemon"


def _members(members: Collection[str]) -> str:
    return ", ".join(where(m) for m in sorted(members))


def broken_members(state: TargetState, fingerprint: str) -> tuple[str, ...]:
    """The members through which ``fingerprint`` was found broken (none unless verified)."""
    found = state.verification
    return found.broken_members(fingerprint) if found is not None else ()


def repair_reason(view: TargetView, fingerprint: str) -> str | None:
    """The reason of the ``image.download`` that repairs ``fingerprint``, or None when it
    is not broken, not this owner's, or a member is unhealthy (then it is only warned
    about)."""
    members = broken_members(view.state, fingerprint)
    if not members or view.owner_of(fingerprint) != view.owner:
        return None
    if view.state.unhealthy_members():
        return None
    return REPAIR.format(where=_members(members))


@dataclass(frozen=True)
class Fates:
    """What the plan does with each image: ``repaired`` (deleted and downloaded again),
    ``deleted``, ``wanted`` (an entry keeps it)."""

    repaired: Collection[str]
    deleted: Collection[str]
    wanted: Collection[str]


def copy_warnings(view: TargetView, fates: Fates) -> tuple[PlanWarning, ...]:
    """One ``cluster.broken_copy`` per broken copy of an image this owner manages, saying
    what the plan does about it (:class:`Fates`), or why it does nothing."""
    found = view.state.verification
    if found is None:
        return ()
    return tuple(_warning(view, b, fates) for b in found.broken
                 if view.owner_of(b.fingerprint) == view.owner)


def _warning(view: TargetView, broken: BrokenCopy, fates: Fates) -> PlanWarning:
    fp = broken.fingerprint
    attribution = view.attrs.get(fp)
    record = attribution.record if attribution is not None else None
    detail = f" ({broken.detail})" if broken.detail else ""
    text = (f"image {short(fp)} is listed, but its files cannot be read through "
            f"{where(broken.member)}{detail}; ")
    return PlanWarning(code=BROKEN_COPY, target=view.target,
                       image=record.source if record is not None else fp,
                       message=text + _outcome(view, fp, fates))


def _outcome(view: TargetView, fp: str, fates: Fates) -> str:
    if fp in fates.repaired:
        return "the plan deletes it and downloads it again"
    if fp in fates.deleted:
        return "the plan deletes it"
    unhealthy = view.state.unhealthy_members()
    if unhealthy:
        names = ", ".join(m.name for m in unhealthy)
        return (f"not repaired while a member is unhealthy ({names}); run again with "
                "--verify once every member is up")
    if fp in fates.wanted:
        return "the remote no longer serves this build, so it cannot be downloaded again"
    return "no entry declares it, so it is not repaired (delete it, or declare it again)"


def unchecked_notes(state: TargetState) -> tuple[str, ...]:
    """One note per member ``--verify`` could not check, with why."""
    found = state.verification
    if found is None:
        return ()
    return tuple(f"target {state.target!r}: --verify could not check {where(m)}: {why}"
                 for m, why in sorted(found.unchecked.items()))
