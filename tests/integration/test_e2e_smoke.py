"""The shortest real loop: validate, plan, apply, plan again shows nothing."""

from __future__ import annotations

import json

import pytest

from tests.support.e2e import World

pytestmark = pytest.mark.integration


def test_fresh_apply_then_no_change(world: World) -> None:
    built = world.tree.add("tiny", "1.0", "20260101_0000")
    world.write("""
        images:
          - source: test:tiny/1.0
            aliases: [tiny]
            auto_update: true
    """)
    assert world.cli("validate").returncode == 0
    plan = world.cli("plan", "--detailed-exitcode", "--format", "json")
    assert plan.returncode == 2, plan.stderr
    actions = [c["action"] for c in json.loads(plan.stdout)["changes"]]
    assert actions == ["image.download", "alias.create"]
    applied = world.cli("apply", "--yes")
    assert applied.returncode == 0, applied.stderr
    assert world.aliases() == {"tiny": built.fingerprint}
    image = world.images()[built.fingerprint]
    assert image["auto_update"] is True
    assert image["update_source"]["alias"] == "tiny/1.0"
    again = world.cli("plan", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No changes" in again.stdout
