"""The real 3-member cluster fixture itself: formed, reachable through every member,
a killed member marked Offline and back after a restart, broken copies made on purpose."""

from __future__ import annotations

import pytest

from reconciler.adapters.incus import connect
from tests.support.cluster import Cluster

pytestmark = pytest.mark.integration


def test_every_member_is_online_and_serves_the_cluster(cluster: Cluster) -> None:
    assert cluster.statuses() == {"m1": "Online", "m2": "Online", "m3": "Online"}
    for i in (1, 2, 3):
        for target in (cluster.socket_target(i), cluster.https_target(i)):
            with connect(target) as store:
                state = store.observe()
            assert state.clustered
            assert [m.name for m in state.members] == ["m1", "m2", "m3"]
            assert state.members[i - 1].url == cluster.url(i)


def test_kill_wait_offline_restart(cluster: Cluster) -> None:
    cluster.kill(3)
    cluster.wait_offline(3)
    assert cluster.statuses()["m3"] == "Offline"
    cluster.restart(3)
    cluster.wait_online(3)
    assert cluster.member(3).config()["core.https_address"] == cluster.member(3).https_address


def test_two_members_restart_together(cluster: Cluster) -> None:
    cluster.kill(2, 3)
    cluster.restart(2, 3)
    cluster.wait_online(2, 3)
    assert set(cluster.statuses().values()) == {"Online"}
