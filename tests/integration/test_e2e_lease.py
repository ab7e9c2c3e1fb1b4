"""The apply lease, end to end: two applies never interleave on one daemon.

Slow downloads (``served.file_delay``) keep an apply busy long enough to race it.
Only processes these tests start are signalled, by PID.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.constants import TINY_MANUAL as TINY
from tests.support.e2e import REPO, World

pytestmark = pytest.mark.integration

LEASE = "user.incus-images.lease"


def lease(world: World) -> dict[str, Any] | None:
    value = world.daemon.config().get(LEASE)
    return json.loads(value) if value else None


def wait_for(what: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@contextmanager
def background(world: World, *args: str) -> Iterator[subprocess.Popen[str]]:
    """``incus-images ARGS -f images.yaml`` running in the background; killed if left over."""
    argv = [sys.executable, "-m", "reconciler", *args, "-f", str(world.dir / "images.yaml")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("INCUS_SOCKET", None)
    proc = subprocess.Popen(argv, cwd=world.dir, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def test_a_second_apply_waits_or_refuses_naming_the_holder(world: World) -> None:
    built = world.tree.add("tiny", "1.0", "20260101_0000")
    world.write(TINY)
    world.served.file_delay = 2.5  # the first apply downloads slowly...
    # ...and its lease lives 2 s unless renewed, so it must be renewed to last.
    with background(world, "apply", "--yes", "--lease-ttl", "2") as first:
        wait_for(lambda: lease(world) is not None)
        held = lease(world)
        assert held is not None and held["holder"].endswith(f":{first.pid}")
        assert held["holder"].startswith("incus-images@")

        refused = world.cli("apply", "--yes", "--lock-timeout", "1")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        since = datetime.fromisoformat(held["since"].replace("Z", "+00:00"))
        assert (f"target 'local' is locked by {held['holder']} since "
                f"{since.replace(microsecond=0).isoformat().replace('+00:00', 'Z')}"
                ) in refused.stderr
        assert "gave up after 1s (--lock-timeout)" in refused.stderr
        assert "Traceback" not in refused.stderr

        assert first.poll() is None, "the first apply ended too soon to race it"
        with background(world, "apply", "--yes") as second:
            code1, out1, err1 = finish(first)
            code2, out2, err2 = finish(second)
    assert code1 == 0, out1 + err1
    assert code2 == 0, out2 + err2
    assert f"is locked by {held['holder']}" in err2 and "waiting up to 300s" in err2
    # The second planned after the first had finished: nothing left to do.
    assert "No changes" in out2
    assert world.aliases() == {"tiny": built.fingerprint}
    assert lease(world) is None


def test_a_killed_applys_lease_does_not_block_the_next(world: World) -> None:
    built = world.tree.add("tiny", "1.0", "20260101_0000")
    world.write(TINY)
    world.served.file_delay = 3.0
    with background(world, "apply", "--yes") as doomed:
        wait_for(lambda: lease(world) is not None)
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait(timeout=30)
    left = lease(world)
    assert left is not None and left["holder"].endswith(f":{doomed.pid}")  # never released
    world.served.file_delay = 0.0
    # Its process is gone on this machine: the lease is abandoned, no need to wait.
    done = world.cli("apply", "--yes", "--lock-timeout", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    assert world.aliases() == {"tiny": built.fingerprint}
    assert lease(world) is None


def _foreign_lease(world: World, seconds: float) -> dict[str, Any]:
    """A lease written by hand, as an apply on another machine would hold it."""
    now = datetime.now(UTC)
    value = {"holder": "ci@elsewhere:4242", "since": now.isoformat().replace("+00:00", "Z"),
             "expires": (now + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z"),
             "token": "not-ours", "host": "another-boot/1", "pid": 4242}
    world.daemon.set_config({LEASE: json.dumps(value)})
    return value


def test_a_lease_expires_on_its_own_and_the_next_apply_proceeds(world: World) -> None:
    built = world.tree.add("tiny", "1.0", "20260101_0000")
    world.write(TINY)
    _foreign_lease(world, 4)
    refused = world.cli("apply", "--yes", "--lock-timeout", "0")
    assert refused.returncode == 1
    assert "locked by ci@elsewhere:4242 since " in refused.stderr
    assert world.images() == {}
    planned = world.cli("plan", "--detailed-exitcode")  # plan takes no lease
    assert planned.returncode == 2, planned.stdout + planned.stderr
    _foreign_lease(world, 4)  # fresh: on a loaded machine the two runs above can outlast it
    started = time.monotonic()
    done = world.cli("apply", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "locked by ci@elsewhere:4242" in done.stderr and "waiting up to 300s" in done.stderr
    assert time.monotonic() - started < 60
    assert world.aliases() == {"tiny": built.fingerprint}
    assert lease(world) is None


def test_a_saved_plan_waits_for_the_lease_too(world: World) -> None:
    world.tree.add("tiny", "1.0", "20260101_0000")
    world.write(TINY)
    assert world.cli("plan", "--out", "plan.json").returncode == 0
    _foreign_lease(world, 60)
    refused = world.cli("apply", "plan.json", "--lock-timeout", "0.5")
    assert refused.returncode == 1 and "locked by ci@elsewhere:4242" in refused.stderr
    assert world.images() == {}
    still = lease(world)
    assert still is not None and still["holder"] == "ci@elsewhere:4242"


def test_the_lease_is_released_when_apply_fails(world: World) -> None:
    world.tree.add("tiny", "1.0", "20260101_0000")
    world.import_by_hand("other", "9.0", "20260101_0000", "tiny")  # a conflict on 'tiny'
    world.write(TINY)
    failed = world.cli("apply", "--yes")
    assert failed.returncode == 1
    assert "alias 'tiny'" in failed.stderr
    assert lease(world) is None


def test_an_apply_whose_lease_was_taken_over_starts_no_more_changes(world: World) -> None:
    """Another apply took the lease (here: written by hand) while this one downloaded:
    the alias that would follow is not made, and the run fails naming the new holder."""
    world.tree.add("tiny", "1.0", "20260101_0000")
    world.write(TINY)
    world.served.file_delay = 3.0
    with background(world, "apply", "--yes", "--lease-ttl", "1.5") as run:
        wait_for(lambda: lease(world) is not None)
        wait_for(lambda: any(p.startswith("/images/") for p in world.served.requests))
        _foreign_lease(world, 600)
        code, out, err = finish(run)
    assert code == 1, out + err
    assert "alias.create tiny" in out + err
    assert "the lease on this target was taken over by ci@elsewhere:4242" in out + err
    assert "this apply's lease was taken over by ci@elsewhere:4242" in err
    assert "Traceback" not in err
    assert world.aliases() == {}  # the download under way finished; nothing after it ran
    still = lease(world)
    assert still is not None and still["holder"] == "ci@elsewhere:4242"  # left alone
