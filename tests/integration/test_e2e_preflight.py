"""Issue 4 against a real incusd: requirements, instance impact, sizes, cached policy,
relative expiry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.apply.executor import apply_plan
from reconciler.desired.load import load_config
from reconciler.pipeline import make_plan, opened_stores
from reconciler.services import system_services
from tests.support.e2e import World

pytestmark = pytest.mark.integration


def plan_json(world: World, *args: str) -> dict:  # type: ignore[type-arg]
    done = world.cli("plan", "--format", "json", *args)
    assert done.returncode in (0, 2), done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def with_pool(world: World) -> None:
    """A dir storage pool and a root disk on the default profile: instances can be
    created (not started) from images."""
    world.daemon.api("POST", "/1.0/storage-pools", {"name": "pool", "driver": "dir"})
    world.daemon.api("PATCH", "/1.0/profiles/default", {
        "devices": {"root": {"type": "disk", "path": "/", "pool": "pool"}}})


def test_nesting_warned_until_a_profile_sets_it(world: World) -> None:
    world.tree.add("nest", "1.0", "20260101_0000", requirements={"nesting": "true"})
    world.write("""
        images:
          - source: test:nest/1.0
            aliases: [nest]
    """)
    plan = plan_json(world)
    assert [(w["code"], w["image"]) for w in plan["warnings"]] == [
        ("requirements.nesting", "test:nest/1.0")]
    assert "none of the profiles [default] sets it" in plan["warnings"][0]["message"]
    assert world.cli("plan", "--fail-on-warnings").returncode == 1
    text = world.cli("plan").stdout
    assert text.index("requirements.nesting") < text.index("image.download")
    world.daemon.api("POST", "/1.0/profiles", {"name": "nesting",
                                               "config": {"security.nesting": "true"}})
    world.write("""
        images:
          - source: test:nest/1.0
            aliases: [nest]
            profiles: [default, nesting]
    """)
    assert plan_json(world)["warnings"] == []
    assert world.cli("apply", "--yes").returncode == 0
    # After download the image's own requirements.* properties are checked.
    props = next(iter(world.images().values()))["properties"]
    assert props.get("requirements.nesting") == "true"
    assert plan_json(world)["warnings"] == []


def test_download_sizes_match_the_served_files(world: World) -> None:
    built = world.tree.add("tiny", "1.0", "20260101_0000")
    world.write("""
        images:
          - source: test:tiny/1.0
    """)
    served = sum(Path(world.tree.root, p).stat().st_size
                 for p in world.tree.file_paths(built.fingerprint))
    plan = plan_json(world)
    assert plan["changes"][0]["size"] == served == built.size
    assert plan["summary"]["download_bytes"] == served
    assert f"({served} B" in world.cli("plan").stdout


def test_image_delete_names_the_instance_created_from_it(world: World) -> None:
    with_pool(world)
    built = world.tree.add("tiny", "1.0", "20260101_0000")
    world.write("""
        images:
          - source: test:tiny/1.0
            aliases: [tiny]
    """)
    assert world.cli("apply", "--yes").returncode == 0
    world.daemon.api("POST", "/1.0/instances", {
        "name": "c1", "type": "container", "start": False,
        "source": {"type": "image", "alias": "tiny"}})
    world.write("images: []\n")
    plan = plan_json(world, "--allow-empty")
    delete = [c for c in plan["changes"] if c["action"] == "image.delete"]
    assert delete == [{**delete[0], "fingerprint": built.fingerprint, "instances": ["c1"]}]
    assert "instances created from it: c1" in world.cli("plan", "--allow-empty").stdout


def test_cached_policy_deletes_old_cached_image_and_spares_managed(world: World) -> None:
    with_pool(world)
    managed = world.tree.add("tiny", "1.0", "20260101_0000")
    cached = world.tree.add("small", "2.0", "20260101_0000")
    # An instance created straight from the remote makes the daemon cache the image.
    world.daemon.api("POST", "/1.0/instances", {
        "name": "c1", "type": "container", "start": False,
        "source": {"type": "image", "mode": "pull", "server": world.served.url,
                   "protocol": "simplestreams", "alias": "small/2.0"}})
    assert world.images()[cached.fingerprint]["cached"] is True
    path = world.write("""
        policy:
          cached: {delete_unused_after: 30d}
        images:
          - source: test:tiny/1.0
    """)
    assert world.cli("apply", "--yes").returncode == 0
    config = load_config(path, {})
    now = datetime.now(UTC)
    real = system_services()
    with opened_stores(config, real) as stores, real.reader() as reader:
        assert not [c for c in make_plan(config, stores, reader, targets=None,
                                         allow_empty=False, now=now).changes]
        later = now + timedelta(days=31)
        plan = make_plan(config, stores, reader, targets=None, allow_empty=False, now=later)
        assert [(c.action.value, c.fingerprint) for c in plan.changes] == [
            ("image.delete", cached.fingerprint)]
        assert plan.changes[0].instances == ["c1"]
        result = apply_plan(plan, stores={"local": stores["local"]}, reader=reader,
                            remotes=config.remotes)
    assert result.ok
    assert set(world.images()) == {managed.fingerprint}


def test_relative_expiry_is_counted_from_the_build_and_stable(world: World) -> None:
    built = world.tree.add("tiny", "1.0", "20260101_0000")
    world.write("""
        images:
          - source: test:tiny/1.0
            expires_after: 36500d  # from a 2026 build: far past any day this test runs
    """)
    assert world.cli("apply", "--yes").returncode == 0
    expected = built.created_at + timedelta(days=36500)
    got = world.images()[built.fingerprint]["expires_at"]
    assert datetime.fromisoformat(got.replace("Z", "+00:00")) == expected
    for _ in range(2):
        assert world.cli("plan", "--detailed-exitcode").returncode == 0
