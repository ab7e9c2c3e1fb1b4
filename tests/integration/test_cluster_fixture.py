"""The real 3-member cluster fixture itself: formed and reachable through every member
(killing, restarting and waiting for Offline are exercised by test_cluster_health)."""

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
