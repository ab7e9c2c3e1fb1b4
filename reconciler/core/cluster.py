"""What a clustered target's member health means for a plan and for apply (pure).

Rules:

* A member is healthy when it is ``Online`` and, where checked, accepted a connection
  at its ``url`` (:attr:`~reconciler.model.observed.ClusterMember.healthy`); each
  unhealthy member is a ``cluster.member_offline`` warning naming it.
* Incus 6.0.4 and 6.0.5 replace a member's own settings with a failed ``PATCH /1.0``'s
  keys: a clustered target on those versions is a ``cluster.patch_revert_bug`` warning.
* While any member is unhealthy, apply refuses (``skipped``, with the reason) the
  changes that would land or remove image files on every member
  (:data:`REFUSED_ACTIONS`), and the changes that need an image whose landing was
  refused (an alias created or moved onto it, its fields updated).  Everything else
  (alias and field updates of images already there, server settings) is applied.
  ``allow_degraded`` (``--allow-degraded-cluster``) refuses nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from reconciler.model.fingerprint import short_fingerprint
from reconciler.model.observed import ClusterMember, TargetState
from reconciler.model.plan import Action, Change, PlanWarning

MEMBER_OFFLINE = "cluster.member_offline"
PATCH_REVERT_BUG = "cluster.patch_revert_bug"
REVERT_BUG_VERSIONS = ((6, 0, 4), (6, 0, 5))
"""Incus releases whose failed ``PATCH /1.0`` erases member settings (fixed in 6.0.6)."""

REFUSED_ACTIONS = frozenset({
    Action.IMAGE_DOWNLOAD, Action.IMAGE_REFRESH, Action.IMAGE_DELETE, Action.IMAGE_ADOPT})
"""An import with a member down lands on one member only; a delete breaks the image's
copies half-way; an adoption would call such a leftover done."""

LEAVES_BEHIND = ("apply refuses image downloads, adoptions and deletes on this target until "
                 "every member is healthy; with --allow-degraded-cluster new images land on "
                 "the healthy members only, and deletes may leave broken copies to repair "
                 "with --verify once the member is back")
ALLOW = "pass --allow-degraded-cluster to proceed anyway"


def member_problem(member: ClusterMember) -> str:
    """Why ``member`` is not healthy, in the daemon's words where it gave some."""
    if member.status != "Online":
        said = f": {member.message}" if member.message else ""
        return f"member {member.name} is {member.status or 'in an unknown state'}{said}"
    return f"member {member.name} does not accept connections at {member.url}"


def degraded(state: TargetState) -> str:
    """One line naming every unhealthy member ("" when all are healthy)."""
    return "; ".join(member_problem(m) for m in state.unhealthy_members())


def _version(text: str) -> tuple[int, ...]:
    found = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(g or 0) for g in found.groups()) if found else ()


def cluster_warnings(state: TargetState) -> tuple[PlanWarning, ...]:
    """The cluster warnings of one target's observation (none when it is not clustered)."""
    if not state.clustered:
        return ()
    warnings = [PlanWarning(code=MEMBER_OFFLINE, target=state.target, image="",
                            message=f"{member_problem(m)}; {LEAVES_BEHIND}")
                for m in state.unhealthy_members()]
    if _version(state.server_version) in REVERT_BUG_VERSIONS:
        warnings.append(PlanWarning(
            code=PATCH_REVERT_BUG, target=state.target, image="",
            message=f"Incus {state.server_version} on a cluster: a failed server-config "
                    "write can erase member settings (core.https_address, "
                    "cluster.https_address); fixed in 6.0.6"))
    return tuple(warnings)


def refusals(changes: Sequence[Change], state: TargetState, *,
             allow_degraded: bool = False) -> dict[int, str]:
    """Which of one target's ``changes`` (by index) apply refuses on ``state``, and why.

    Empty when every member is healthy, when the target is not clustered, or with
    ``allow_degraded``.  See the module's rules.
    """
    why = degraded(state)
    if allow_degraded or not why:
        return {}
    refused: dict[int, str] = {}
    landing: dict[str, Change] = {}  # fingerprint -> the refused change that would land it
    for i, c in enumerate(changes):
        if c.action in REFUSED_ACTIONS:
            refused[i] = f"refused while the cluster is degraded ({why}); {ALLOW}"
            if c.action is not Action.IMAGE_DELETE:
                for fp in (c.fingerprint, c.to if c.action is Action.IMAGE_REFRESH else None):
                    if fp:
                        landing.setdefault(fp, c)
            continue
        needed = _needs(c)
        if needed in landing:
            refused[i] = (f"refused because it needs image {short_fingerprint(needed)}, whose "
                          f"{landing[needed].action} was refused while the cluster is "
                          f"degraded ({why}); {ALLOW}")
    return refused


def _needs(c: Change) -> str | None:
    """The image ``c`` needs in the store: an alias's new target, an updated image."""
    if c.action in (Action.ALIAS_CREATE, Action.ALIAS_MOVE):
        return c.to
    if c.action is Action.IMAGE_UPDATE:
        return c.fingerprint
    return None
