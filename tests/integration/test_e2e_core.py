"""The core scenarios of the contract, end to end: the real CLI, a real incusd, a served tree.

Every test asserts on the daemon's own state (``world.images()`` / ``world.aliases()``,
read from its API, never from the tool) and on exit statuses and outputs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.constants import TINY_TWO_ALIASES as TINY
from tests.support.e2e import REPO, World

pytestmark = pytest.mark.integration

CLEARED = "1970-01-01T00:00:00Z"


# -- helpers ------------------------------------------------------------------------------

def apply_ok(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    done = world.cli("apply", "--yes", *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def plan_json(world: World, *args: str) -> dict[str, Any]:
    done = world.cli("plan", "--format", "json", *args)
    assert done.returncode == 0, done.stdout + done.stderr
    plan: dict[str, Any] = json.loads(done.stdout)
    return plan


def actions(plan: dict[str, Any]) -> list[str]:
    return [c["action"] for c in plan["changes"]]


def assert_no_changes(world: World) -> None:
    again = world.cli("plan", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No changes" in again.stdout


def image_requests(world: World) -> list[str]:
    """Requests for image files (not index files) the served tree answered so far."""
    return [p for p in list(world.served.requests) if p.startswith("/images/")]


def store(world: World) -> dict[str, list[str]]:
    """Fingerprint -> sorted alias names: the shape of the store."""
    shape: dict[str, list[str]] = {fp: [] for fp in world.images()}
    for name, fp in world.aliases().items():
        shape[fp].append(name)
    return {fp: sorted(names) for fp, names in shape.items()}


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("incus-images: error:")]
    assert len(errors) == 1, stderr
    return errors[0]


# -- 1. fresh apply, then nothing to do ---------------------------------------------------

def test_fresh_apply_then_no_change(world: World) -> None:
    built = world.tree.add("tiny", "1.0", "20260101_0000")
    world.write(TINY)
    first = world.cli("plan", "--detailed-exitcode")
    assert first.returncode == 2, first.stdout + first.stderr
    assert world.images() == {}  # plan changes nothing

    apply_ok(world)
    assert store(world) == {built.fingerprint: ["tiny", "tiny/current"]}
    before = world.images()
    assert_no_changes(world)

    world.served.reset()
    second = apply_ok(world)
    assert "No changes" in second.stdout
    assert image_requests(world) == []
    after = world.images()
    assert after.keys() == before.keys()
    for fp, img in after.items():
        for key in ("aliases", "auto_update", "public", "profiles", "properties",
                    "expires_at", "update_source"):
            assert img[key] == before[fp][key], key
    assert_no_changes(world)


# -- 2. a new upstream build --------------------------------------------------------------

def test_new_build_with_stale_daemon_cache_lands_planned_build_via_upload(world: World) -> None:
    old = world.tree.add("tiny", "1.0", "20260101_0000")
    world.write(TINY)
    apply_ok(world)
    assert store(world) == {old.fingerprint: ["tiny", "tiny/current"]}

    new = world.tree.add("tiny", "1.0", "20260102_0000")  # the daemon's index is an hour stale
    plan = plan_json(world)
    download = next(c for c in plan["changes"] if c["action"] == "image.download")
    assert download["fingerprint"] == new.fingerprint

    done = world.cli("apply", "--yes", "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    landed = [o for o in result["outcomes"] if o["change"]["action"] == "image.download"]
    assert [(o["status"], o["via"], o["fingerprint"]) for o in landed] == [
        ("done", "upload", new.fingerprint)]
    assert store(world) == {new.fingerprint: ["tiny", "tiny/current"]}

    again = plan_json(world)
    assert again["changes"] == []
    assert [w["code"] for w in again["warnings"]] == ["auto_update.no_source"]
    assert world.cli("plan", "--detailed-exitcode").returncode == 0


def test_new_build_with_fresh_daemon_cache_lands_via_pull(world: World) -> None:
    old = world.tree.add("tiny", "1.0", "20260101_0000")
    world.write(TINY)
    apply_ok(world)

    new = world.tree.add("tiny", "1.0", "20260102_0000")
    world.daemon.flush_stream_cache(world.served.url)
    done = world.cli("apply", "--yes", "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    landed = [o for o in json.loads(done.stdout)["outcomes"]
              if o["change"]["action"] == "image.download"]
    assert [(o["via"], o["fingerprint"]) for o in landed] == [("pull", new.fingerprint)]
    assert store(world) == {new.fingerprint: ["tiny", "tiny/current"]}
    assert old.fingerprint not in world.images()
    image = world.images()[new.fingerprint]
    assert image["update_source"]["alias"] == "tiny/1.0"
    assert image["auto_update"] is True
    again = plan_json(world)
    assert again["changes"] == [] and again["warnings"] == []


def test_stale_pull_onto_an_unmanaged_image_leaves_its_fields_alone(world: World) -> None:
    """The daemon's stale index resolves the alias to a build an admin imported by hand:
    the daemon writes the pull request's fields onto that image; the tool puts them back."""
    by_hand = world.import_by_hand("tiny", "1.0", "20260101_0000", "by-hand")
    before = world.images()[by_hand]
    new = world.tree.add("tiny", "1.0", "20260102_0000")
    world.write("""
        images:
          - source: test:tiny/1.0
            aliases: [tiny]
            auto_update: true
            public: true
            properties: {team: web}
    """)
    apply_ok(world)
    assert store(world) == {new.fingerprint: ["tiny"], by_hand: ["by-hand"]}
    after = world.images()[by_hand]
    for key in ("auto_update", "public", "profiles", "properties", "expires_at"):
        assert after[key] == before[key], key
    image = world.images()[new.fingerprint]
    assert (image["public"], image["auto_update"], image["properties"]["team"]) == (
        True, True, "web")
    assert_no_changes(world)


# -- 3. alias-only edits move no bytes ----------------------------------------------------

def test_alias_only_edits_move_no_bytes(world: World) -> None:
    built = world.tree.add("tiny", "1.0", "20260101_0000")
    world.write(TINY)
    apply_ok(world)
    fingerprints = set(world.images())

    edits = [
        # add one
        ("[tiny, tiny/current, tiny-extra]", ["tiny", "tiny-extra", "tiny/current"]),
        # remove one
        ("[tiny, tiny-extra]", ["tiny", "tiny-extra"]),
        # rename one (tiny-extra -> tiny-renamed)
        ("[tiny, tiny-renamed]", ["tiny", "tiny-renamed"]),
        # describe one
        ("[tiny, {name: tiny-renamed, description: renamed}]", ["tiny", "tiny-renamed"]),
    ]
    for aliases, expected in edits:
        world.write(f"""
            images:
              - source: test:tiny/1.0
                aliases: {aliases}
                auto_update: true
        """)
        world.served.reset()
        apply_ok(world)
        assert image_requests(world) == [], aliases
        assert set(world.images()) == fingerprints
        assert store(world) == {built.fingerprint: expected}
        assert_no_changes(world)


# -- 4. a removed entry goes, a hand-imported image stays --------------------------------

def test_removed_entry_is_deleted_hand_imported_image_stays(world: World) -> None:
    tiny = world.tree.add("tiny", "1.0", "20260101_0000")
    small = world.tree.add("small", "2.0", "20260101_0000")
    world.write("""
        images:
          - source: test:tiny/1.0
            aliases: [tiny]
          - source: test:small/2.0
            aliases: [small]
    """)
    apply_ok(world)
    mine = world.import_by_hand("other", "9.0", "20260101_0000", "by-hand")
    assert store(world) == {tiny.fingerprint: ["tiny"], small.fingerprint: ["small"],
                            mine: ["by-hand"]}

    world.write("""
        images:
          - source: test:tiny/1.0
            aliases: [tiny]
    """)
    plan = plan_json(world)
    assert [(c["action"], c.get("fingerprint")) for c in plan["changes"]] == [
        ("image.delete", small.fingerprint)]
    apply_ok(world)
    assert store(world) == {tiny.fingerprint: ["tiny"], mine: ["by-hand"]}
    assert_no_changes(world)


# -- 5. expiry ----------------------------------------------------------------------------

def test_expiry_is_written_cleared_and_enforced(world: World) -> None:
    built = world.tree.add("tiny", "1.0", "20260101_0000")
    fp = built.fingerprint

    def entry(extra: str) -> None:
        world.write("images:\n  - source: test:tiny/1.0\n    aliases: [tiny]\n" + extra)

    entry("    expires_at: 2099-01-01\n")
    apply_ok(world)
    assert world.images()[fp]["expires_at"] == "2099-01-01T00:00:00Z"
    assert_no_changes(world)

    entry("")
    plan = plan_json(world)
    assert actions(plan) == ["image.update"]
    apply_ok(world)
    assert world.images()[fp]["expires_at"] == CLEARED
    assert_no_changes(world)

    entry("    expires_at: 2020-01-01\n")
    plan = plan_json(world)
    assert [(c["action"], c.get("fingerprint")) for c in plan["changes"]] == [
        ("image.delete", fp)]
    apply_ok(world)
    assert world.images() == {} and world.aliases() == {}
    world.served.reset()
    for _ in range(2):
        assert_no_changes(world)
        apply_ok(world)
    assert image_requests(world) == []
    assert world.images() == {}


def test_remote_expiry_is_left_alone_and_not_enforced(world: World) -> None:
    """A past ``support_eol`` the daemon copied from the remote is not the file's expiry."""
    built = world.tree.add("tiny", "1.0", "20260101_0000", support_eol="2020-06-01")
    world.write(TINY)
    apply_ok(world)
    assert world.images()[built.fingerprint]["expires_at"] == "2020-06-01T00:00:00Z"
    assert_no_changes(world)
    assert store(world) == {built.fingerprint: ["tiny", "tiny/current"]}


# -- 6. a pinned fingerprint holds --------------------------------------------------------

def test_pinned_fingerprint_holds_while_upstream_moves_on(world: World) -> None:
    pinned = world.tree.add("tiny", "1.0", "20260101_0000")
    world.write(f"""
        images:
          - source: test:tiny/1.0
            fingerprint: {pinned.fingerprint}
            aliases: [tiny-pinned]
    """)
    apply_ok(world)
    assert store(world) == {pinned.fingerprint: ["tiny-pinned"]}

    world.tree.add("tiny", "1.0", "20260102_0000")
    world.tree.add("tiny", "1.0", "20260103_0000")
    world.daemon.flush_stream_cache(world.served.url)
    plan = plan_json(world)
    assert plan["changes"] == [] and plan["warnings"] == []
    assert world.cli("plan", "--detailed-exitcode").returncode == 0
    apply_ok(world)
    assert store(world) == {pinned.fingerprint: ["tiny-pinned"]}
    image = world.images()[pinned.fingerprint]
    assert image.get("update_source") is None
    assert image["auto_update"] is False


# -- 7. the daemon's own auto-update is followed, not undone ------------------------------

def test_daemon_auto_update_is_followed_without_a_redownload(world: World) -> None:
    old = world.tree.add("tiny", "1.0", "20260101_0000")
    world.write("""
        images:
          - source: test:tiny/1.0
            aliases: [tiny, tiny/current]
            auto_update: true
            properties: {team: web}
            expires_at: 2099-01-01
    """)
    apply_ok(world)
    image = world.images()[old.fingerprint]
    assert image["properties"]["team"] == "web"
    assert image["expires_at"] == "2099-01-01T00:00:00Z"

    new = world.tree.add("tiny", "1.0", "20260102_0000")
    world.daemon.flush_stream_cache(world.served.url)
    world.daemon.api("POST", f"/1.0/images/{old.fingerprint}/refresh")
    # The daemon moved the aliases, wiped the properties and reset the expiry.
    assert store(world) == {new.fingerprint: ["tiny", "tiny/current"]}
    refreshed = world.images()[new.fingerprint]
    assert "team" not in refreshed["properties"]
    assert refreshed["expires_at"] != "2099-01-01T00:00:00Z"

    plan = plan_json(world)
    assert actions(plan) == ["image.update"], plan["changes"]
    update = plan["changes"][0]
    assert update["fingerprint"] == new.fingerprint
    assert set(update["fields"]) == {"properties", "expires_at"}
    world.served.reset()
    apply_ok(world)
    assert image_requests(world) == []
    image = world.images()[new.fingerprint]
    assert image["properties"]["team"] == "web"
    assert image["expires_at"] == "2099-01-01T00:00:00Z"
    assert image["auto_update"] is True
    assert store(world) == {new.fingerprint: ["tiny", "tiny/current"]}
    assert_no_changes(world)


# -- 8. an alias held by an image nobody manages ------------------------------------------

def test_alias_held_by_unmanaged_image_fails_or_is_taken(world: World) -> None:
    built = world.tree.add("tiny", "1.0", "20260101_0000")
    other = world.import_by_hand("other", "9.0", "20260101_0000", "web", "other")
    images = "images:\n  - source: test:tiny/1.0\n    aliases: [web]\n"
    world.write(images)
    before = store(world)
    for command in (("plan",), ("apply", "--yes")):
        done = world.cli(*command)
        assert done.returncode == 1, done.stdout + done.stderr
        line = one_error_line(done.stderr)
        assert "'web'" in line and other in line, line
        assert store(world) == before

    world.write(images + "policy: {alias_conflicts: take}\n")
    apply_ok(world)
    assert store(world) == {built.fingerprint: ["web"], other: ["other"]}
    assert_no_changes(world)


# -- 9. an apply killed with SIGKILL, then run again --------------------------------------

def _poll(what: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the kill point")
        time.sleep(0.01)


class _Watch:
    """Polls the daemon while an apply runs: every declared alias must always resolve."""

    def __init__(self, world: World, declared: set[str]) -> None:
        self.world = world
        self.declared = declared
        self.problems: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            aliases = self.world.aliases()
            present = set(self.world.images())
            for name in sorted(self.declared):
                if aliases.get(name) not in present:
                    self.problems.append(f"alias {name} -> {aliases.get(name)}; "
                                         f"store {sorted(present)}")
            time.sleep(0.02)


KILLS = [
    # The daemon's index is fresh: it pulls the new build itself.
    ("pull", "catalog-read"),    # before the download starts
    ("pull", "file-requested"),  # while the daemon downloads (it carries on alone)
    ("pull", "image-landed"),    # after the download, before it is recorded
    ("pull", "alias-moved"),     # after the first alias moved, before the old build goes
    # The daemon's index is stale: the tool fetches the files and uploads them.
    ("upload", "file-requested"),
    ("upload", "image-landed"),
    # The very first apply, into an empty store.
    ("first", "file-requested"),
    ("first", "image-landed"),
]

KILLED = """
    images:
      - source: test:tiny/1.0
        aliases: [tiny, tiny/current]
        auto_update: true
        properties: {team: web}
        expires_at: 2099-01-01
"""


@pytest.mark.parametrize(("via", "kill_at"), KILLS, ids=["-".join(k) for k in KILLS])
def test_apply_killed_then_rerun_converges(world: World, via: str, kill_at: str) -> None:
    """SIGKILL at a point of the apply, run it again: the store ends as an uninterrupted
    apply leaves it, and every declared alias resolves to an image all along."""
    old = world.tree.add("tiny", "1.0", "20260101_0000")
    world.write(KILLED)
    declared = {"tiny", "tiny/current"}
    if via == "first":
        world.tree.remove_version("tiny", "1.0", "20260101_0000")
        declared = set()
    else:
        apply_ok(world)
    new = world.tree.add("tiny", "1.0", "20260102_0000")
    if via in ("pull", "first"):
        world.daemon.flush_stream_cache(world.served.url)
    world.served.file_delay = 0.4
    world.served.reset()

    triggers: dict[str, Callable[[], bool]] = {
        "catalog-read": lambda: world.served.count("streams/v1/images.json") > 0,
        "file-requested": lambda: bool(image_requests(world)),
        "image-landed": lambda: new.fingerprint in world.images(),
        "alias-moved": lambda: world.aliases().get("tiny") == new.fingerprint,
    }
    argv = [sys.executable, "-m", "reconciler", "apply", "--yes",
            "-f", str(world.dir / "images.yaml")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with _Watch(world, declared) as watch:
        proc = subprocess.Popen(argv, cwd=world.dir, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            _poll(triggers[kill_at])
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL, "the apply ended before the kill point"
        world.served.file_delay = 0.0
        apply_ok(world)
    assert watch.problems == []
    assert store(world) == {new.fingerprint: ["tiny", "tiny/current"]}
    assert old.fingerprint not in world.images()
    image = world.images()[new.fingerprint]
    assert (image["auto_update"], image["properties"].get("team"), image["expires_at"]) == (
        True, "web", "2099-01-01T00:00:00Z")
    assert_no_changes(world)


# -- 10. an empty file --------------------------------------------------------------------

def test_empty_file_is_refused_unless_allowed(world: World) -> None:
    built = world.tree.add("tiny", "1.0", "20260101_0000")
    world.write(TINY)
    apply_ok(world)
    mine = world.import_by_hand("other", "9.0", "20260101_0000", "by-hand")
    before = store(world)
    assert built.fingerprint in before
    refusals = [("", ("plan",)), ("images:\n", ("plan", "--detailed-exitcode")),
                ("images: []\n", ("plan",)), ("images: []\n", ("apply", "--yes"))]
    for images, command in refusals:  # absent, null and empty lists alike
        world.write(images)
        done = world.cli(*command)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "--allow-empty" in one_error_line(done.stderr)
        assert store(world) == before

    plan = plan_json(world, "--allow-empty")
    assert [(c["action"], c.get("fingerprint")) for c in plan["changes"]] == [
        ("image.delete", built.fingerprint)]
    apply_ok(world, "--allow-empty")
    assert store(world) == {mine: ["by-hand"]}
    assert world.cli("plan", "--detailed-exitcode").returncode == 0


# -- 11. a failed download leaves the store as it was -------------------------------------

@pytest.mark.parametrize("daemon_index", ["fresh", "stale"])
def test_failed_download_leaves_the_store_as_it_was(world: World, daemon_index: str) -> None:
    """fresh: the daemon's own pull fails its check, then so does the tool's upload;
    stale: the daemon lands the old build, and the tool's upload fails its check."""
    old = world.tree.add("tiny", "1.0", "20260101_0000")
    world.write(TINY)
    apply_ok(world)
    before = world.images()

    new = world.tree.add("tiny", "1.0", "20260102_0000")
    world.tree.corrupt(new.fingerprint)
    if daemon_index == "fresh":
        world.daemon.flush_stream_cache(world.served.url)
    done = world.cli("apply", "--yes")
    assert done.returncode == 1, done.stdout + done.stderr
    line = one_error_line(done.stderr)
    assert "test:tiny/1.0" in line and new.fingerprint[:12] in line, line
    assert "corrupt" in line, line
    assert store(world) == {old.fingerprint: ["tiny", "tiny/current"]}
    after = world.images()[old.fingerprint]
    for key in ("auto_update", "public", "properties", "expires_at", "profiles",
                "update_source"):
        assert after.get(key) == before[old.fingerprint].get(key), key

    # Once the remote serves good files again, the same file converges.
    world.tree.add("tiny", "1.0", "20260102_0000")
    apply_ok(world)
    assert store(world) == {new.fingerprint: ["tiny", "tiny/current"]}
