"""Lock file, ``diff`` in a real git repository, and ``status``, end to end.

The real CLI (``python -m reconciler``) against a real daemon and a served
simplestreams tree (``world``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import git
import jsonschema
import pytest
from ruamel.yaml import YAML

from tests.support.constants import TINY
from tests.support.e2e import REPO, World

pytestmark = pytest.mark.integration

STATUS_SCHEMA = json.loads((REPO / "schemas" / "status.schema.json").read_text())
LOCK_SCHEMA = json.loads((REPO / "schemas" / "lock.schema.json").read_text())


def ok(proc: object) -> None:
    assert getattr(proc, "returncode", None) == 0, (getattr(proc, "stdout", ""),
                                                    getattr(proc, "stderr", ""))


def plan_json(world: World) -> dict[str, object]:
    proc = world.cli("plan", "--format", "json")
    ok(proc)
    data: dict[str, object] = json.loads(proc.stdout)
    return data


def test_lock_holds_builds_until_upgrade_and_is_byte_stable(world: World) -> None:
    first = world.tree.add("tiny", "1.0", "20260101_0000")
    world.write(TINY)
    lock_file = world.dir / "images.lock.yaml"

    locked = world.cli("lock")
    ok(locked)
    assert "Wrote" in locked.stdout and "+ test:tiny/1.0 (container, x86_64) on local" \
        in locked.stdout
    text = lock_file.read_text()
    assert first.fingerprint in text and "20260101_0000" in text
    jsonschema.validate(YAML(typ="safe", pure=True).load(text), LOCK_SCHEMA)

    os.utime(lock_file, (1_000_000, 1_000_000))
    again = world.cli("lock")
    ok(again)
    assert "is up to date (1 entry)" in again.stdout
    assert lock_file.read_text() == text and lock_file.stat().st_mtime == 1_000_000

    ok(world.cli("apply", "--yes"))
    assert world.aliases() == {"tiny": first.fingerprint}

    # A new upstream build: with the lock, nothing to do, and plain `lock` keeps it.
    second = world.tree.add("tiny", "1.0", "20260102_0000")
    world.daemon.flush_stream_cache(world.served.url)
    held = world.cli("plan", "--detailed-exitcode")
    assert held.returncode == 0, held.stdout + held.stderr
    assert "No changes" in held.stdout
    ok(world.cli("lock"))
    assert lock_file.read_text() == text and lock_file.stat().st_mtime == 1_000_000

    upgraded = world.cli("lock", "--upgrade", "test:tiny/1.0")
    ok(upgraded)
    assert f"{first.fingerprint[:12]} (20260101_0000) -> {second.fingerprint[:12]} " \
        "(20260102_0000)" in upgraded.stdout
    assert second.fingerprint in lock_file.read_text()

    moving = world.cli("plan", "--detailed-exitcode", "--format", "json")
    assert moving.returncode == 2, moving.stderr
    changes = json.loads(moving.stdout)["changes"]
    assert [(c["action"], c.get("fingerprint") or c.get("to")) for c in changes] == [
        ("image.download", second.fingerprint), ("alias.move", second.fingerprint),
        ("image.delete", first.fingerprint)]
    ok(world.cli("apply", "--yes"))
    assert world.aliases() == {"tiny": second.fingerprint}
    assert set(world.images()) == {second.fingerprint}
    assert world.cli("plan", "--detailed-exitcode").returncode == 0


def test_older_locked_build_is_pulled_by_fingerprint_with_a_warning(world: World) -> None:
    first = world.tree.add("tiny", "1.0", "20260101_0000")
    world.write(TINY)
    ok(world.cli("lock"))
    world.tree.add("tiny", "1.0", "20260102_0000")
    plan = plan_json(world)
    warnings = plan["warnings"]
    assert isinstance(warnings, list)
    assert [w["code"] for w in warnings] == ["auto_update.no_source"]
    changes = plan["changes"]
    assert isinstance(changes, list) and changes[0]["fingerprint"] == first.fingerprint
    assert changes[0]["pull"]["fingerprint"] == first.fingerprint
    ok(world.cli("apply", "--yes"))
    assert world.aliases() == {"tiny": first.fingerprint}
    assert world.cli("plan", "--detailed-exitcode").returncode == 0


def test_locked_build_the_remote_dropped_is_an_error_naming_lock_upgrade(world: World) -> None:
    first = world.tree.add("tiny", "1.0", "20260101_0000")
    world.write(TINY)
    ok(world.cli("lock"))
    world.tree.add("tiny", "1.0", "20260102_0000")
    world.tree.remove_version("tiny", "1.0", "20260101_0000")
    failed = world.cli("plan")
    assert failed.returncode == 1, failed.stdout
    assert first.fingerprint in failed.stderr
    assert "lock --upgrade test:tiny/1.0" in failed.stderr
    assert "Traceback" not in failed.stderr
    # An entry added to the file but not to the lock is planned live, with a warning.
    world.tree.add("tiny", "2.0", "20260101_0000")
    ok(world.cli("lock", "--upgrade"))
    world.write(TINY + """
      - source: test:tiny/2.0
        aliases: [tiny2]
    """)
    codes = [w["code"] for w in plan_json(world)["warnings"]]  # type: ignore[union-attr]
    assert codes == ["lock.missing"]


def _repo(world: World) -> git.Repo:
    repo = git.Repo.init(world.dir)
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "ci")
        cw.set_value("user", "email", "ci@example.test")
    return repo


def _commit(repo: git.Repo, message: str, *names: str) -> str:
    repo.index.add(list(names))
    return repo.index.commit(message).hexsha


def test_diff_between_revisions_in_text_and_markdown(world: World, tmp_path: Path) -> None:
    world.tree.add("tiny", "1.0", "20260101_0000")
    world.tree.add("tiny", "2.0", "20260101_0000")
    repo = _repo(world)
    world.write(TINY)
    base = _commit(repo, "tiny 1.0", "images.yaml")
    world.write(TINY.replace("aliases: [tiny]", "aliases: [tiny, tiny-one]") + """
      - source: test:tiny/2.0
        aliases: [tiny2]
    """)
    ok(world.cli("lock"))
    head = _commit(repo, "tiny 2.0, locked", "images.yaml", "images.lock.yaml")

    text = world.cli("diff", "--base", base)
    ok(text)
    out = text.stdout
    assert f"Changes to images.yaml ({base} -> working tree):" in out
    assert "  + test:tiny/2.0 (container, host architecture) on local" in out
    assert "  ~ test:tiny/1.0 (container, host architecture) on local" in out
    assert "      aliases: [tiny] -> [tiny, tiny-one]" in out
    assert "Changes to images.lock.yaml:" in out and "  + test:tiny/2.0 (container, x86_64)" in out
    assert "Plan of images.yaml (working tree) against the live stores:" in out
    assert "image.download" in out

    detailed = world.cli("diff", "--base", base, "--head", head, "--detailed-exitcode")
    assert detailed.returncode == 2, detailed.stderr

    summary = tmp_path / "summary.md"
    summary.write_text("# earlier\n")
    md = world.cli("diff", "--base", base, "--format", "markdown",
                   env={"GITHUB_STEP_SUMMARY": str(summary)})
    ok(md)
    lines = md.stdout.splitlines()
    assert lines[0] == "<!-- incus-images:diff -->"
    assert lines[1].startswith(f"**incus-images diff** `{base}` → `working tree`: "
                               "`images.yaml`: 1 entry added, 1 changed · "
                               "`images.lock.yaml`: 2 entries added · **Plan:** 2 to download")
    assert "#### Target `local` (project `default`)" in lines
    assert len(md.stdout) < 65_535
    assert summary.read_text() == "# earlier\n\n" + md.stdout

    # Applied: the head's plan is empty, so --detailed-exitcode says 0.
    ok(world.cli("apply", "--yes"))
    settled = world.cli("diff", "--base", base, "--head", head, "--detailed-exitcode")
    assert settled.returncode == 0, settled.stdout + settled.stderr
    assert "No changes. The image stores match images.yaml." in settled.stdout

    # A "bump images" change touches only the lock file.
    world.tree.add("tiny", "1.0", "20260102_0000")
    ok(world.cli("lock", "--upgrade"))
    bump = world.cli("diff", "--base", head, "--format", "markdown", "--detailed-exitcode")
    assert bump.returncode == 2, bump.stderr
    assert "`images.yaml`: no changes · `images.lock.yaml`: 1 entry moved" in bump.stdout

    bad = world.cli("diff", "--base", "no-such-rev")
    assert bad.returncode == 1 and "unknown git revision 'no-such-rev'" in bad.stderr


def test_plan_appends_markdown_to_the_step_summary(world: World, tmp_path: Path) -> None:
    world.tree.add("tiny", "1.0", "20260101_0000")
    world.write(TINY)
    summary = tmp_path / "summary.md"
    proc = world.cli("plan", env={"GITHUB_STEP_SUMMARY": str(summary)})
    ok(proc)
    assert proc.stdout.startswith("Target local")  # stdout keeps the asked-for format
    assert summary.read_text().startswith("**Plan:** 1 to download, 1 alias change")
    ok(world.cli("plan", env={"GITHUB_STEP_SUMMARY": str(summary)}))
    assert summary.read_text().count("**Plan:**") == 2


def test_status_in_both_formats(world: World) -> None:
    built = world.tree.add("tiny", "1.0", "20260101_0000")
    world.write(TINY)
    ok(world.cli("apply", "--yes"))
    hand = world.import_by_hand("other", "1.0", "20260101_0000", "by-hand")

    proc = world.cli("status", "--format", "json")
    ok(proc)
    data = json.loads(proc.stdout)
    jsonschema.validate(data, STATUS_SCHEMA)
    local = data["targets"]["local"]
    assert local["project"] == "default"
    images = {i["fingerprint"]: i for i in local["images"]}
    assert set(images) == {built.fingerprint, hand}
    mine = images[built.fingerprint]
    assert {k: mine[k] for k in ("managed", "owner", "cached", "aliases", "source",
                                 "auto_update", "update_available")} == {
        "managed": True, "owner": "incus-images", "cached": False, "aliases": ["tiny"],
        "source": "test:tiny/1.0", "auto_update": True, "update_available": False}
    assert mine["size"] > 0 and mine["expires_at"] is None
    other = images[hand]
    assert (other["managed"], other["owner"], other["aliases"]) == (False, None, ["by-hand"])

    newer = world.tree.add("tiny", "1.0", "20260102_0000")
    assert newer.fingerprint != built.fingerprint
    later = json.loads(world.cli("status", "--format", "json").stdout)
    assert {i["fingerprint"]: i["update_available"]
            for i in later["targets"]["local"]["images"]}[built.fingerprint] is True
    offline = json.loads(world.cli("status", "--format", "json", "--offline").stdout)
    assert {i["update_available"] for i in offline["targets"]["local"]["images"]} == {None}

    text = world.cli("status")
    ok(text)
    assert text.stdout.startswith("Target local (project default): 2 images\n")
    assert f"{built.fingerprint[:12]}  incus-images (this file)" in text.stdout
    assert "test:tiny/1.0" in text.stdout and "by-hand" in text.stdout
