"""``storage.space`` on every member of a cluster (issue 9 item 7): the adapter reads each
member's own ``storage.images_volume`` and its pool's space; the planner warns per member
short of space, naming it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.adapters.incus_space import with_free_space
from reconciler.core.planner import make_plan
from reconciler.model.observed import ClusterMember
from tests.support.builders import NOW, build, catalog, config, entry
from tests.support.fakes import FakeStore

B = build("deb/1", 1)


def _members(*free: int | None) -> tuple[ClusterMember, ...]:
    return tuple(ClusterMember(name=f"m{i}", images_free_bytes=f)
                 for i, f in enumerate(free, start=1))


def _space_warnings(store: FakeStore) -> list[str]:
    cat = catalog(B)
    plan = make_plan(config(entry("r:deb/1")), {"r": cat}, {"local": store.observe()}, now=NOW)
    return [w.message for w in plan.warnings if w.code == "storage.space"]


def test_the_member_short_of_space_is_named() -> None:
    store = FakeStore(universe={"r": catalog(B)})
    store.members = _members(B.size, B.size - 1, None)
    [message] = _space_warnings(store)
    assert "member m2" in message and f"{B.size - 1} bytes free" in message


def test_every_member_short_of_space_warns() -> None:
    store = FakeStore(universe={"r": catalog(B)})
    store.members = _members(0, B.size - 1, B.size)
    messages = _space_warnings(store)
    assert ["member m1" in m for m in messages] == [True, False]
    assert "member m2" in messages[1]


def test_members_with_room_do_not_warn_even_when_the_contacted_store_reads_short() -> None:
    store = FakeStore(universe={"r": catalog(B)})
    store.images_free_bytes = 0  # the contacted member's figure; the members' say more
    store.members = _members(B.size, B.size, B.size)
    assert _space_warnings(store) == []


def test_without_member_figures_the_contacted_store_is_checked() -> None:
    store = FakeStore(universe={"r": catalog(B)})
    store.images_free_bytes = B.size - 1
    store.members = _members(None, None, None)
    [message] = _space_warnings(store)
    assert "member" not in message


# -- the adapter's reads ---------------------------------------------------------------------

class Api:
    """Answers ``get(path, params)`` from a table; records every read."""

    def __init__(self, answers: Mapping[tuple[str, str], Any]) -> None:
        self.answers = answers
        self.reads: list[tuple[str, str]] = []

    def __call__(self, path: str, params: Mapping[str, str]) -> Any:
        key = (path, params.get("target", ""))
        self.reads.append(key)
        return self.answers.get(key)


def _state(pool: str, total: int, used: int) -> dict[str, Any]:
    return {"storage_pools": {pool: {"space": {"total": total, "used": used}}}}


def test_each_member_is_read_with_its_own_images_volume() -> None:
    api = Api({
        ("/1.0", "m2"): {"config": {"storage.images_volume": "fast/imgs"}},
        ("/1.0", "m3"): {"config": {}},
        ("/1.0/cluster/members/m1/state", ""): _state("p", 100, 40),
        ("/1.0/cluster/members/m2/state", ""): _state("fast", 50, 45),
    })
    members = (ClusterMember(name="m1"), ClusterMember(name="m2"), ClusterMember(name="m3"),
               ClusterMember(name="m4", status="Offline"))
    got = with_free_space(members, contacted="m1",
                          contacted_config={"storage.images_volume": "p/imgs"}, get=api)
    assert [m.images_free_bytes for m in got] == [60, 5, None, None]
    # The contacted member's config is not read again; m3 keeps images on its own disk
    # (no state read); the Offline member is not asked at all.
    assert api.reads == [("/1.0/cluster/members/m1/state", ""), ("/1.0", "m2"),
                         ("/1.0/cluster/members/m2/state", ""), ("/1.0", "m3")]


def test_a_failed_read_leaves_the_space_unknown() -> None:
    api = Api({})
    got = with_free_space((ClusterMember(name="m2"),), contacted="m1", contacted_config={},
                          get=api)
    assert got[0].images_free_bytes is None
