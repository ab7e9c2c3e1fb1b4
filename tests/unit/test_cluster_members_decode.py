"""Cluster members as the daemon lists them, turned into values (pure)."""

from __future__ import annotations

from reconciler.adapters.incus_decode import clustered, member_name, members_from_api
from reconciler.model.observed import ClusterMember, TargetState


def test_members_are_read_by_name_with_status_and_url() -> None:
    listed = [
        {"server_name": "m2", "url": "https://127.0.0.2:8443", "status": "Offline",
         "message": "No heartbeat for 21s", "roles": ["database"]},
        {"server_name": "m1", "url": "https://127.0.0.1:8443", "status": "Online",
         "message": "Fully operational", "roles": ["database-leader", "database"]},
        {"url": "no name"}, "garbage",
    ]
    members = members_from_api(listed)
    assert [m.name for m in members] == ["m1", "m2"]
    assert members[1].status == "Offline" and members[1].url == "https://127.0.0.2:8443"
    assert members[0].roles == ("database-leader", "database")
    assert members_from_api(None) == ()


def test_clustered_and_member_name_come_from_the_environment() -> None:
    info = {"environment": {"server_clustered": True, "server_name": "m3"}}
    assert clustered(info) and member_name(info) == "m3"
    assert not clustered({}) and member_name({}) == ""


def test_a_member_is_healthy_only_online_and_reachable() -> None:
    state = TargetState(target="c", project="default", effective_project="default",
                        host_architecture="x86_64", clustered=True, members=(
                            ClusterMember(name="m1"),
                            ClusterMember(name="m2", status="Offline"),
                            ClusterMember(name="m3", reachable=False),
                            ClusterMember(name="m4", status="Evacuated", reachable=True),
                        ))
    assert [m.name for m in state.unhealthy_members()] == ["m2", "m3", "m4"]
