"""SIGINT and SIGTERM at several moments of a real run, against a real daemon.

Every stop must: exit 130 (SIGINT) or 143 (SIGTERM); print exactly one
``incus-images: interrupted (...)`` line, last on stderr, and no traceback;
leave the lease released (no ``user.incus-images.lease`` of this run); leave no
``incus-images-*`` directory in the run's temporary directory; and let the next
apply converge.  A run killed with SIGKILL on an HTTPS target must leave no key
material on disk.

Moments: start-up (as soon as the process has its handlers: before that it is
the interpreter's, which no program controls), waiting for another holder's
lease, an apply whose store is still listing its images (the run does not wait for
the list), and an apply between changes (a slow download: the change under way
finishes, the next does not start).  ``II_SIGNAL_RUNS`` repeats each case (the
default 1 keeps the suite short; the figures in the report came from more).

Only processes these tests start are signalled, by PID; each runs in its own
session, so nothing else receives the signals.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.e2e import REPO, World
from tests.support.sockproxy import counting_proxy

pytestmark = pytest.mark.integration

LEASE = "user.incus-images.lease"
RUNS = int(os.environ.get("II_SIGNAL_RUNS", "1"))
SIGNALS = [pytest.param(signal.SIGINT, id="SIGINT"), pytest.param(signal.SIGTERM, id="SIGTERM")]
TWO = """
    images:
      - source: test:tiny/1.0
        aliases: [tiny]
      - source: test:small/2.0
        aliases: [small]
"""


@dataclass
class Running:
    """A CLI run in the background; its output is collected as it comes."""

    proc: subprocess.Popen[str]
    tmp: Path
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    readers: list[threading.Thread] = field(default_factory=list)

    def stderr(self) -> str:
        return "".join(self.err)

    def handlers_installed(self) -> bool:
        """Whether the process catches SIGTERM yet (its own handlers are in)."""
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return False
        caught = next(int(line.split()[1], 16) for line in status.splitlines()
                      if line.startswith("SigCgt:"))
        return bool(caught & (1 << (signal.SIGTERM - 1)))

    def finish(self, timeout: float = 120) -> int:
        """The exit status, once the process ended and all its output was read (a
        process that ends right after writing must not race its readers)."""
        code = self.proc.wait(timeout=timeout)
        for reader in self.readers:
            reader.join(timeout=30)
        return code


def _reader(stream: Any, into: list[str]) -> None:
    for line in iter(stream.readline, ""):
        into.append(line)


@contextmanager
def running(world: World, *args: str) -> Iterator[Running]:
    """``incus-images ARGS -f images.yaml`` with its own TMPDIR; SIGKILLed if left over."""
    tmp = world.dir.parent / f"tmp-{time.monotonic_ns()}"
    tmp.mkdir()
    argv = [sys.executable, "-m", "reconciler", *args, "-f", str(world.dir / "images.yaml")]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp)}
    env.pop("INCUS_SOCKET", None)
    proc = subprocess.Popen(argv, cwd=world.dir, env=env, text=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    run = Running(proc, tmp)
    readers = [threading.Thread(target=_reader, args=(proc.stdout, run.out), daemon=True),
               threading.Thread(target=_reader, args=(proc.stderr, run.err), daemon=True)]
    run.readers = readers
    for reader in readers:
        reader.start()
    try:
        yield run
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        for reader in readers:
            reader.join(timeout=30)


def wait_for(what: Callable[[], bool], run: Running, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert run.proc.poll() is None, f"the run ended first: {run.stderr()}"
        assert time.monotonic() < deadline, f"timed out: {run.stderr()}"
        time.sleep(0.005)


def lease(world: World) -> dict[str, Any] | None:
    value = world.daemon.config().get(LEASE)
    return json.loads(value) if value else None


def assert_stopped_cleanly(run: Running, sig: int) -> str:
    """Exit 128+sig, exactly one interrupted line (the last), no traceback; that line."""
    code = run.finish()
    err = run.stderr()
    name = signal.Signals(sig).name
    assert code == 128 + sig, (code, err)
    assert "Traceback" not in err, err
    lines = err.splitlines()
    stops = [line for line in lines if "interrupted" in line]
    assert len(stops) == 1 and lines[-1] == stops[0], err
    assert stops[0].startswith(f"incus-images: interrupted ({name})"), err
    return stops[0]


def assert_nothing_left(run: Running) -> None:
    left = sorted(p.name for p in run.tmp.iterdir() if p.name.startswith("incus-images-"))
    assert left == [], left


def fresh_store(world: World) -> None:
    """No daemon operation still running (a killed run's pull goes on), no image."""
    deadline = time.monotonic() + 60
    while world.daemon.api("GET", "/1.0/operations").metadata.get("running"):
        assert time.monotonic() < deadline, "the daemon's operations never ended"
        time.sleep(0.05)
    for fingerprint in list(world.images()):
        world.daemon.api("DELETE", f"/1.0/images/{fingerprint}")
    world.served.reset()


def downloading(world: World, run: Running) -> None:
    """Wait until this run holds the lease and the daemon fetches an image file for it."""
    wait_for(lambda: (lease(world) or {}).get("pid") == run.proc.pid, run)
    wait_for(lambda: any(p.startswith("/images/") for p in list(world.served.requests)), run)


def assert_converges(world: World) -> None:
    world.served.file_delay = 0.0
    again = world.cli("apply", "--yes", "--lock-timeout", "0")
    assert again.returncode == 0, again.stdout + again.stderr
    assert world.cli("plan", "--detailed-exitcode").returncode == 0
    assert lease(world) is None


# -- start-up ----------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", SIGNALS)
def test_a_signal_during_start_up(world: World, sig: int) -> None:
    """As soon as the handlers are in (the imports follow): one line, nothing done."""
    world.tree.add("tiny", "1.0", "20260101_0000")
    world.tree.add("small", "2.0", "20260101_0000")
    world.write(TWO)
    for _ in range(RUNS):
        with running(world, "apply", "--yes") as run:
            wait_for(run.handlers_installed, run, timeout=30)
            run.proc.send_signal(sig)
            line = assert_stopped_cleanly(run, sig)
        assert run.stderr() == line + "\n"  # nothing else at all
        assert run.out == []
        assert_nothing_left(run)
        assert lease(world) is None
        assert world.images() == {}
    assert_converges(world)


# -- waiting for another holder's lease ----------------------------------------------------------

def _foreign_lease(world: World) -> dict[str, Any]:
    """A lease held by an apply on another machine, for an hour."""
    now = datetime.now(UTC)
    value = {"holder": "ci@elsewhere:4242", "since": now.isoformat().replace("+00:00", "Z"),
             "expires": (now + timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
             "token": "not-ours", "host": "another-boot/1", "pid": 4242}
    world.daemon.set_config({LEASE: json.dumps(value)})
    return value


@pytest.mark.parametrize("sig", SIGNALS)
def test_a_signal_while_waiting_for_the_lease(world: World, sig: int) -> None:
    world.tree.add("tiny", "1.0", "20260101_0000")
    world.tree.add("small", "2.0", "20260101_0000")
    world.write(TWO)
    theirs = _foreign_lease(world)
    for _ in range(RUNS):
        with running(world, "apply", "--yes") as run:
            wait_for(lambda: "is locked by ci@elsewhere:4242" in run.stderr(), run)
            time.sleep(0.2)  # inside the wait now
            run.proc.send_signal(sig)
            line = assert_stopped_cleanly(run, sig)
        assert line.endswith("stopped while waiting for the lease on target 'local'; "
                             "nothing was changed"), line
        assert_nothing_left(run)
        assert lease(world) == theirs  # the holder's lease is left alone
        assert world.images() == {}
    world.daemon.set_config({LEASE: ""})
    assert_converges(world)


# -- an apply between changes --------------------------------------------------------------------

@pytest.mark.parametrize("sig", SIGNALS)
def test_a_signal_during_a_download_stops_before_the_next_change(world: World, sig: int) -> None:
    """The downloads under way (daemon operations; two run at once) finish; the next
    change never starts; the lease is released; the next apply converges."""
    tiny = world.tree.add("tiny", "1.0", "20260101_0000")
    small = world.tree.add("small", "2.0", "20260101_0000")
    world.write(TWO)
    for _ in range(RUNS):
        fresh_store(world)
        world.served.file_delay = 0.5
        with running(world, "apply", "--yes") as run:
            downloading(world, run)
            run.proc.send_signal(sig)
            line = assert_stopped_cleanly(run, sig)
        assert "stopped before " in line and line.endswith("; lease released"), line
        made = len(world.images())  # the downloads under way were made, nothing after them
        assert made in (1, 2) and f"({made} of " in line, line
        assert_nothing_left(run)
        assert lease(world) is None
        assert world.aliases() == {}, line
    assert_converges(world)
    assert set(world.images()) == {tiny.fingerprint, small.fingerprint}


# -- an apply still reading a store --------------------------------------------------------------

@pytest.mark.parametrize("sig", SIGNALS)
def test_a_signal_while_a_store_is_still_listing_its_images(world: World, sig: int) -> None:
    """A daemon sends its image list only once it is whole (minutes for a big store): a
    proxy holds it 20 s here.  The run stops at once, without waiting for the list,
    and releases its lease: a CI runner's cancel gives seconds before SIGKILL."""
    world.tree.add("tiny", "1.0", "20260101_0000")
    world.tree.add("small", "2.0", "20260101_0000")
    hold = 20.0
    with counting_proxy(world.daemon.socket, hold={"GET /1.0/images?": hold}) as proxy:
        world.write(TWO, targets=f"targets:\n  local:\n    url: {proxy.url}")
        with running(world, "apply", "--yes") as run:
            wait_for(lambda: (lease(world) or {}).get("pid") == run.proc.pid, run)
            wait_for(lambda: any(r.startswith("GET /1.0/images?") for r in proxy.requests),
                     run)
            signalled = time.monotonic()
            run.proc.send_signal(sig)
            line = assert_stopped_cleanly(run, sig)
            took = time.monotonic() - signalled
    assert took < hold / 2, f"{took:.1f} s: the run waited for the image list"
    assert line.endswith("nothing was changed; lease released"), line
    assert_nothing_left(run)
    assert lease(world) is None
    assert world.images() == {}
    world.write(TWO)
    assert_converges(world)


# -- an HTTPS target: key material ----------------------------------------------------------------

def _https_world(world: World) -> None:
    """Target ``prod`` over HTTPS with a trusted client certificate (files in the repo)."""
    daemon = world.daemon
    url = daemon.enable_https()
    client = daemon.make_client_cert("ci-client")
    certs = world.dir / "certs"
    certs.mkdir(exist_ok=True)
    (certs / "client.crt").write_text(client.cert_pem)
    (certs / "client.key").write_text(client.key_pem)
    (certs / "server.crt").write_text(daemon.server_cert_pem())
    world.write(TWO, targets=(f"targets:\n  prod:\n    url: {url}\n"
                              "    client_cert: certs/client.crt\n"
                              "    client_key: certs/client.key\n"
                              "    server_cert: certs/server.crt"))


def _key_material_on_disk(run: Running, key_pem: str) -> list[str]:
    """Files under the run's TMPDIR holding a line of the key, or named client.key."""
    body = [line for line in key_pem.splitlines() if line and not line.startswith("-----")]
    found = []
    for path in run.tmp.rglob("*"):
        if path.name == "client.key" or (path.is_file() and any(
                line in path.read_text(errors="replace") for line in body)):
            found.append(str(path))
    return found


def _fd_targets(pid: int) -> list[str]:
    """What each open file descriptor of ``pid`` points to.  One the run closes while
    they are listed (a connection) is passed over: the key's memory file stays open
    for the whole run."""
    targets = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            targets.append(os.readlink(fd))
        except FileNotFoundError:
            continue
    return targets


@pytest.mark.parametrize("sig", [*SIGNALS, pytest.param(signal.SIGKILL, id="SIGKILL")])
def test_a_stopped_https_run_leaves_no_key_on_disk(world: World, sig: int) -> None:
    """The client key lives in memory files only: none is on disk while the run works,
    and none after it is stopped, even by SIGKILL (no clean-up code runs then)."""
    _https_world(world)
    world.tree.add("tiny", "1.0", "20260101_0000")
    world.tree.add("small", "2.0", "20260101_0000")
    key_pem = (world.dir / "certs" / "client.key").read_text()
    for _ in range(RUNS):
        fresh_store(world)
        world.served.file_delay = 0.5
        with running(world, "apply", "--yes") as run:
            downloading(world, run)
            assert _key_material_on_disk(run, key_pem) == []
            memfds = {t for t in _fd_targets(run.proc.pid) if t.startswith("/memfd:")}
            assert "/memfd:incus-images-client.key (deleted)" in memfds, memfds
            run.proc.send_signal(sig)
            if sig == signal.SIGKILL:
                assert run.finish() == -signal.SIGKILL
            else:
                line = assert_stopped_cleanly(run, sig)
                assert line.endswith("; lease released"), line
        assert _key_material_on_disk(run, key_pem) == []
        assert_nothing_left(run)
        if sig != signal.SIGKILL:
            assert lease(world) is None
    # A killed run's lease is abandoned (its process is gone on this machine).
    assert_converges(world)
