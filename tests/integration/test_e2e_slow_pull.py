"""Pulls that take as long as real-size ones, end to end (issue 7, point 1).

The served tree sends image files at a throttled rate (``served.rate``), so a pull
of a few MB of random, incompressible rootfs takes several seconds: far longer than
one ``/wait?timeout=2`` round, which Incus 6.0.4 answers with "context deadline
exceeded" while the operation runs.  Every assertion reads the daemon's own state
(``world.images()`` / ``world.aliases()``) and the server's request log.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.support.e2e import World

pytestmark = pytest.mark.integration

PAYLOAD = 3_000_000
"""Random bytes in the rootfs: about 3 MB that xz cannot shrink."""
RATE = 400_000
"""Bytes per second the server sends image files at: the pull takes about 7.5 s."""

BIG = """
    images:
      - source: test:big/1.0
        aliases: [big, big/current]
        auto_update: true
"""


def downloads_running(world: World) -> list[dict[str, Any]]:
    ops = world.daemon.api("GET", "/1.0/operations?recursion=1").metadata or {}
    return [op for op in ops.get("running") or []
            if op.get("description") == "Downloading image"]


def wait_until_no_download_runs(world: World, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while downloads_running(world):
        assert time.monotonic() < deadline, "the daemon's download never ended"
        time.sleep(0.2)


def pending(world: World) -> list[Any]:
    raw = world.daemon.config().get("user.incus-images.incus-images.default")
    return list(json.loads(raw).get("pending") or []) if raw else []


def test_a_slow_pull_is_waited_for_and_lands_via_pull(world: World) -> None:
    built = world.tree.add("big", "1.0", "20260101_0000", payload=PAYLOAD)
    files = world.tree.file_paths(built.fingerprint)
    assert built.size > PAYLOAD
    world.write(BIG, owner="incus-images")
    world.served.rate = RATE
    world.served.reset()

    started = time.monotonic()
    done = world.cli("apply", "--yes", "--format", "json")
    took = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    rootfs = dict(world.served.transfers).get("/" + files[-1], 0.0)
    print(f"\napply of a {built.size / 1e6:.1f} MB image served at {RATE / 1e3:.0f} kB/s: "
          f"{took:.1f} s, rootfs transfer {rootfs:.1f} s; requests per file: "
          f"{[world.served.count(f) for f in files]}")
    assert rootfs > 6, "the pull was not slow: the test proves nothing"

    result = json.loads(done.stdout)
    download = next(o for o in result["outcomes"] if o["change"]["action"] == "image.download")
    assert (download["status"], download["via"]) == ("done", "pull"), download
    assert "uploading" not in done.stderr
    # Fetched once, by the daemon: the tool fetched nothing itself.
    assert [world.served.count(f) for f in files] == [1, 1]
    image = world.images()[built.fingerprint]
    source = image["update_source"]
    assert (source["server"], source["alias"], source["protocol"]) == (
        world.served.url, "big/1.0", "simplestreams")
    assert image["auto_update"] is True
    assert world.aliases() == {"big": built.fingerprint, "big/current": built.fingerprint}
    assert pending(world) == []

    again = world.cli("plan", "--detailed-exitcode")
    assert again.returncode == 0 and "No changes" in again.stdout, again.stdout + again.stderr


def test_giving_up_cancels_the_pull_and_the_next_run_leaves_no_stray_image(
    world: World,
) -> None:
    built = world.tree.add("big", "1.0", "20260101_0000", payload=PAYLOAD)
    files = world.tree.file_paths(built.fingerprint)
    world.write(BIG, owner="incus-images")
    world.served.rate = RATE // 2  # about 15 s: far beyond the timeout below
    world.served.reset()

    started = time.monotonic()
    gave_up = world.cli("apply", "--yes", "--operation-timeout", "3")
    print(f"\napply --operation-timeout 3 gave up after {time.monotonic() - started:.1f} s; "
          f"rootfs requests: {world.served.count(files[-1])}")
    assert gave_up.returncode == 1, gave_up.stdout + gave_up.stderr
    assert "Traceback" not in gave_up.stderr
    assert "gave up after 3s (--operation-timeout); the daemon cancelled it" in gave_up.stderr
    assert "uploading" not in gave_up.stderr
    # The cancel stopped the daemon's download: nothing lands, now or later.
    wait_until_no_download_runs(world)
    time.sleep(2)
    assert world.images() == {}
    assert world.aliases() == {}
    assert pending(world) == []  # the daemon confirmed the cancel: nothing to claim
    assert world.served.count(files[-1]) == 1  # the tool did not fetch it itself

    world.served.rate = 0
    done = world.cli("apply", "--yes", "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    download = next(o for o in result["outcomes"] if o["change"]["action"] == "image.download")
    assert download["via"] == "pull", download
    assert set(world.images()) == {built.fingerprint}
    assert world.aliases() == {"big": built.fingerprint, "big/current": built.fingerprint}
    status = world.cli("status", "--format", "json")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "Traceback" not in status.stderr
    again = world.cli("plan", "--detailed-exitcode")
    assert again.returncode == 0 and "No changes" in again.stdout, again.stdout + again.stderr
