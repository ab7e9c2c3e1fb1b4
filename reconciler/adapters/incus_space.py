"""Free image space on every member of a cluster (``storage.space``, issue 9 item 7).

``storage.images_volume`` is a member's own setting (``pool/volume``): each member may
keep its images on another pool, or on its local disk (then the API does not expose
the free space).  Every member that holds a copy of a download needs the room.

Invariants:

* For a standalone daemon nothing is read here (``TargetState.images_free_bytes`` is).
* Per healthy member, at most two reads: ``GET /1.0?target=<name>`` for its
  ``storage.images_volume`` (not for the contacted member, whose config the
  observation already read), and, only when that names a pool,
  ``GET /1.0/cluster/members/<name>/state`` for the pool's space.  A member that is
  not healthy is not asked (its answer would be a timeout or an error).
* A read that fails leaves that member's ``images_free_bytes`` None (unknown): space
  is a warning, never a reason to fail the observation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from reconciler.adapters.incus_decode import config_map, images_pool, pool_free_bytes
from reconciler.model.observed import ClusterMember

Get = Callable[[str, Mapping[str, str]], Any]
"""``get(path, params)``: a sync answer's metadata, or None when the request failed."""


def with_free_space(members: tuple[ClusterMember, ...], *, contacted: str,
                    contacted_config: Mapping[str, str], get: Get
                    ) -> tuple[ClusterMember, ...]:
    """``members`` with each healthy one's ``images_free_bytes`` read where exposed."""
    return tuple(_with_space(m, contacted, contacted_config, get) for m in members)


def _with_space(member: ClusterMember, contacted: str, contacted_config: Mapping[str, str],
                get: Get) -> ClusterMember:
    if not member.healthy:
        return member
    if member.name == contacted:
        config: Mapping[str, str] = contacted_config
    else:
        info = get("/1.0", {"target": member.name})
        config = config_map(info.get("config") if isinstance(info, Mapping) else None)
    pool = images_pool(config.get("storage.images_volume", ""))
    if not pool:
        return member
    state = get(f"/1.0/cluster/members/{quote(member.name, safe='')}/state", {})
    free = pool_free_bytes(state, pool)
    return member if free is None else member.model_copy(update={"images_free_bytes": free})
