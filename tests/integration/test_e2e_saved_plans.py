"""Saved plans and provenance, end to end: plan --out, show, apply PLAN against a real incusd.

Every "nothing changed" is asserted on the daemon's own state, read from its API.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import git
import pytest

from tests.support.constants import TINY_TEAM as TINY
from tests.support.e2e import REPO, World

pytestmark = pytest.mark.integration

INVENTORY = "user.incus-images.incus-images.default"


def ok(done: Any) -> Any:
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def error_lines(done: Any) -> list[str]:
    """The stderr of a failed run: exit 1, no traceback, only ``error:`` lines."""
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines and all(line.startswith("incus-images: error: ") for line in lines), lines
    return lines


def show(world: World, *args: str, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    """``incus-images show ARGS`` in the world's directory (show takes no ``-f``)."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "reconciler", "show", *args], cwd=world.dir,
                          env=full_env, text=True, capture_output=True, timeout=60,
                          check=False)


def state(world: World) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """Images, aliases and server config, straight from the daemon."""
    return world.images(), world.aliases(), world.daemon.config()


def save_plan(world: World, name: str = "plan.json") -> Path:
    done = world.cli("plan", "--out", name, "--detailed-exitcode")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"saved the plan to {name}" in done.stderr
    return world.dir / name


def test_a_saved_plan_is_applied_as_saved(world: World) -> None:
    built = world.tree.add("tiny", "1.0", "20260101_0000")
    world.write(TINY)
    path = save_plan(world)
    doc = json.loads(path.read_text())
    assert [c["action"] for c in doc["changes"]] == ["image.download", "alias.create"]
    assert doc["desired_digest"] == hashlib.sha256(
        (world.dir / "images.yaml").read_bytes()).hexdigest()
    assert doc["observed"]["local"]["images"] == {built.fingerprint: None}
    assert doc["observed"]["local"]["aliases"] == {"tiny": None}
    assert world.images() == {}  # plan --out changed nothing

    applied = ok(world.cli("apply", "plan.json"))  # no --yes and no terminal: not asked
    assert "Apply complete" in applied.stdout
    assert world.aliases() == {"tiny": built.fingerprint}
    assert world.images()[built.fingerprint]["properties"]["team"] == "web"
    assert "user.incus-images.lease" not in world.daemon.config()
    again = world.cli("plan", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr

    # The same plan again: what it recorded has moved (its own doing), so it is stale.
    before = state(world)
    lines = error_lines(world.cli("apply", "plan.json"))
    assert "stale" in lines[0]
    assert state(world) == before


def test_a_saved_plan_lands_what_was_reviewed_not_a_newer_build(world: World) -> None:
    reviewed = world.tree.add("tiny", "1.0", "20260101_0000")
    world.write(TINY)
    save_plan(world)
    newer = world.tree.add("tiny", "1.0", "20260102_0000")  # upstream moves after review
    ok(world.cli("apply", "plan.json"))
    assert world.aliases() == {"tiny": reviewed.fingerprint}
    assert set(world.images()) == {reviewed.fingerprint}
    replan = json.loads(ok(world.cli("plan", "--format", "json")).stdout)
    first = replan["changes"][0]
    assert (first["action"], first["fingerprint"]) == ("image.download", newer.fingerprint)


def _edit_property(world: World, fp: str) -> None:
    image = world.daemon.api("GET", f"/1.0/images/{fp}").metadata
    world.daemon.api("PUT", f"/1.0/images/{fp}", {
        "auto_update": image["auto_update"], "public": image["public"],
        "profiles": image["profiles"], "expires_at": image["expires_at"],
        "properties": {**image["properties"], "team": "ops"}})


def _move_alias(world: World, fp: str) -> None:
    other = world.import_by_hand("other", "9.0", "20260101_0000")
    world.daemon.api("PATCH", "/1.0/images/aliases/tiny", {"target": other})


def _edit_file(world: World, fp: str) -> None:
    world.write(TINY + "        public: true\n")


@pytest.mark.parametrize(("change", "why"), [
    (_edit_property, "properties changed"),
    (_move_alias, "alias 'tiny' moved from"),
    (_edit_file, "images.yaml has changed since the plan was made"),
], ids=["property-edited", "alias-moved", "file-edited"])
def test_a_stale_saved_plan_is_refused_and_changes_nothing(world: World, change: Any,
                                                           why: str) -> None:
    old = world.tree.add("tiny", "1.0", "20260101_0000")
    world.write(TINY)
    ok(world.cli("apply", "--yes"))
    world.tree.add("tiny", "1.0", "20260102_0000")
    world.daemon.flush_stream_cache(world.served.url)
    path = save_plan(world)
    assert [c["action"] for c in json.loads(path.read_text())["changes"]] == [
        "image.download", "alias.move", "image.delete"]
    change(world, old.fingerprint)
    before = state(world)
    world.served.reset()
    lines = error_lines(world.cli("apply", "plan.json"))
    assert "stale" in lines[0], lines
    assert any(why in line for line in lines), lines
    assert state(world) == before
    assert not [p for p in world.served.requests if p.startswith("/images/")]


def test_last_use_and_other_owners_do_not_make_a_plan_stale(world: World) -> None:
    world.tree.add("tiny", "1.0", "20260101_0000")
    world.write(TINY)
    save_plan(world)
    # Another owner's image, a hand-made alias, unrelated server config: none of it counts.
    world.import_by_hand("other", "9.0", "20260101_0000", "by-hand")
    world.daemon.set_config({"user.someone.else": "x", "core.https_address": ""})
    world.daemon.api("PATCH", "/1.0/projects/default", {"description": "edited"})
    ok(world.cli("apply", "plan.json"))
    assert world.aliases()["tiny"]


def test_corrupted_plan_files_are_rejected_without_a_traceback(world: World) -> None:
    world.tree.add("tiny", "1.0", "20260101_0000")
    world.write(TINY)
    path = save_plan(world)
    text = path.read_text()
    cases = {
        "truncated": (text[: len(text) // 2], "was it truncated?"),
        "edited": (text.replace('"declared, not in store"', '"looks fine"', 1),
                   "has been edited since it was saved"),
        "random": (json.dumps({"hello": ["world", 1, None]}),
                   "is not a saved plan of format version 1"),
        "list": ("[1, 2, 3]", "expected a JSON object"),
        "binary": ("\x00\x01\x02", "not a saved plan"),
    }
    for name, (content, message) in cases.items():
        bad = world.dir / f"{name}.json"
        bad.write_text(content)
        for done in (world.cli("apply", bad.name), show(world, bad.name)):
            lines = error_lines(done)
            assert len(lines) == 1 and message in lines[0], (name, lines)
    assert world.images() == {} and world.aliases() == {}
    missing = error_lines(show(world, "nope.json"))
    assert "cannot read the plan nope.json" in missing[0]


def test_show_renders_a_saved_plan_in_every_format(world: World) -> None:
    built = world.tree.add("tiny", "1.0", "20260101_0000")
    world.write(TINY)
    path = save_plan(world)
    text = ok(show(world, "plan.json"))
    assert text.stdout.startswith("Saved plan of owner 'incus-images', made ")
    assert f"+ image.download  test:tiny/1.0 {built.fingerprint[:12]}" in text.stdout
    assert "\nPlan: 1 to download, 1 alias change (" in text.stdout
    markdown = ok(show(world, "plan.json", "--format", "markdown"))
    assert "| action | image / alias | fingerprint | reason |" in markdown.stdout
    assert "**Plan:**" in markdown.stdout
    as_json = ok(show(world, "plan.json", "--format", "json"))
    assert as_json.stdout == path.read_text()
    # show contacts nothing: it works with the daemon stopped.
    world.daemon.stop()
    assert ok(show(world, "plan.json")).stdout == text.stdout


def test_target_with_a_saved_plan_is_an_error(world: World) -> None:
    world.tree.add("tiny", "1.0", "20260101_0000")
    world.write(TINY)
    save_plan(world)
    lines = error_lines(world.cli("apply", "--target", "local", "plan.json"))
    assert lines == ["incus-images: error: --target cannot be used with a saved plan: the "
                     "plan already says which targets it changes"]
    assert world.images() == {}


def test_a_saved_plan_holds_no_secrets(world: World) -> None:
    daemon = world.daemon
    url = daemon.enable_https()
    world.tree.add("tiny", "1.0", "20260101_0000")
    client = daemon.make_client_cert("ci-client")
    env = {"II_CERT": client.cert_pem, "II_KEY": client.key_pem}
    (world.dir / "server.crt").write_text(daemon.server_cert_pem())
    targets = (f"targets:\n  prod:\n    url: {url}\n    client_cert: ${{II_CERT}}\n"
               "    client_key: ${II_KEY}\n    server_cert: server.crt")
    world.write(TINY, targets=targets)
    done = world.cli("plan", "--out", "plan.json", env=env)
    assert done.returncode == 0, done.stderr
    saved = (world.dir / "plan.json").read_text()
    for secret in (client.key_pem, *client.key_pem.splitlines()[1:-1], "PRIVATE KEY"):
        assert secret not in saved
    assert "BEGIN" not in saved
    ok(world.cli("apply", "plan.json", env=env))
    assert world.aliases()["tiny"]


# -- provenance ---------------------------------------------------------------------------

def inventory(world: World) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(world.daemon.config()[INVENTORY])
    return data


def test_provenance_is_recorded_and_a_new_commit_changes_nothing(world: World) -> None:
    built = world.tree.add("tiny", "1.0", "20260101_0000")
    repo = git.Repo.init(world.dir)
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "CI").set_value("user", "email", "ci@example.invalid")
    world.write(TINY)
    repo.index.add(["images.yaml"])
    first = repo.index.commit("declare tiny").hexsha
    repo.create_remote("origin", "https://deploy:hunter2@git.example/ops/images.git")

    ok(world.cli("apply", "--yes"))
    record = inventory(world)["images"][built.fingerprint]
    assert record["provenance"] == {"commit": first,
                                    "repository": "https://git.example/ops/images.git",
                                    "path": "images.yaml", "dirty": False}
    assert "hunter2" not in json.dumps(world.daemon.config())

    repo.index.commit("an unrelated commit", parent_commits=None)
    assert repo.head.commit.hexsha != first
    again = world.cli("plan", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr
    ok(world.cli("apply", "--yes"))
    assert inventory(world)["images"][built.fingerprint]["provenance"]["commit"] == first

    # A saved plan says where it came from, and so does show.
    (world.dir / ".gitignore").write_text("*.json\n")
    world.write(TINY + "        public: true\n")
    path = save_plan(world)
    doc = json.loads(path.read_text())
    assert doc["provenance"]["commit"] == repo.head.commit.hexsha
    assert doc["provenance"]["dirty"] is True
    shown = ok(show(world, "plan.json")).stdout.splitlines()[0]
    assert f"at commit {repo.head.commit.hexsha[:12]}, with uncommitted changes" in shown


def test_outside_git_nothing_is_recorded(world: World) -> None:
    built = world.tree.add("tiny", "1.0", "20260101_0000")
    world.write(TINY)
    ok(world.cli("apply", "--yes"))
    assert "provenance" not in inventory(world)["images"][built.fingerprint]
