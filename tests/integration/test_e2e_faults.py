"""Remote and daemon faults, end to end: the real CLI against misbehaving peers on 127.0.0.1.

Each fault must end the run with exit 1 and ONE clear error line (no traceback),
within the limit the user chose, and keep the old build (the lock file is not
touched).  Remote faults use ``lock`` on entries that declare their architecture,
so no daemon is contacted; daemon faults use a real ``incusd`` stopped with SIGSTOP
(and continued afterwards).  Runs are measured: wall time, and the peak RSS of the
CLI process (its VmHWM), printed for the record (``pytest -s``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.adapters.remotes.reader import HttpRemoteReader
from reconciler.errors import RemoteError
from reconciler.model.config import RemoteSpec
from tests.support.e2e import REPO, World
from tests.support.faultserver import misbehave
from tests.support.incusd import Incusd
from tests.support.ssserver import ServedTree, TLSFiles
from tests.support.sstree import SimpleStreamsTree

pytestmark = pytest.mark.integration

INDEX = "streams/v1/index.json"
SLACK = 4.0
"""Seconds a CLI run may take beyond its timeout: Python's start on a busy 2-core machine."""
RSS_LIMIT_KIB = 200 * 1024
"""The CLI's peak RSS when it refuses an endless index (the 64 MiB cap plus Python)."""


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    max_rss_kib: int

    def error_line(self) -> str:
        """The one error line the run printed (asserts exit 1, one line, no traceback)."""
        assert self.returncode == 1, (self.returncode, self.stdout, self.stderr)
        assert "Traceback" not in self.stderr, self.stderr
        lines = self.stderr.splitlines()
        assert len(lines) == 1, self.stderr
        assert lines[0].startswith("incus-images: error: "), lines[0]
        return lines[0]


PEAK = """
import atexit, os, runpy, sys

def peak():
    with open("/proc/self/status") as status:
        hwm = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(os.environ["FAULTS_PEAK_FILE"], "w") as out:
        out.write(hwm)

atexit.register(peak)
sys.argv[0] = "incus-images"
runpy.run_module("reconciler", run_name="__main__", alter_sys=True)
"""
"""``python -m reconciler``, recording the process's peak RSS (VmHWM, KiB) at exit.

VmHWM is that of the process image after exec; ``ru_maxrss`` would also count the
pytest process it was forked from."""


def run_cli(cwd: Path, *args: str, timeout: float = 120) -> Run:
    """``python -m reconciler ARGS`` in ``cwd``, with its wall time and peak RSS."""
    peak = cwd / ".peak"
    peak.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "FAULTS_PEAK_FILE": str(peak)}
    env.pop("INCUS_SOCKET", None)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", PEAK, *args], cwd=cwd, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, check=False)
    seconds = time.monotonic() - start
    return Run(proc.returncode, proc.stdout, proc.stderr, seconds, int(peak.read_text()))


def record(what: str, run: Run) -> None:
    print(f"\n[faults] {what}: exit {run.returncode} after {run.seconds:.2f} s, "
          f"peak RSS {run.max_rss_kib / 1024:.0f} MiB: {run.stderr.strip()}")


def write_file(directory: Path, remote_url: str, certificate: str | None = None,
               target_url: str = "unix:///nonexistent/incus/unix.socket") -> Path:
    """An images.yaml with remote ``test`` and one entry that needs no daemon to lock."""
    cert = ""
    if certificate is not None:
        (directory / "remote.crt").write_text(certificate)
        cert = "\n    certificate: remote.crt"
    path = directory / "images.yaml"
    path.write_text(
        f"version: 1\nremotes:\n  test:\n    url: {remote_url}{cert}\n"
        f"targets:\n  local:\n    url: {target_url}\n"
        "images:\n  - source: test:tiny/1.0\n    architecture: x86_64\n")
    return path


@pytest.fixture
def locked(tmp_path: Path, sstree: SimpleStreamsTree, ss_http: ServedTree) -> Path:
    """A working directory whose lock file holds a build (the "old build" to keep)."""
    sstree.add("tiny", "1.0", "20260101_0000")
    write_file(tmp_path, ss_http.url)
    first = run_cli(tmp_path, "lock")
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "images.lock.yaml").exists()
    return tmp_path


def refuse_with(work: Path, remote_url: str, *args: str, certificate: str | None = None,
                global_args: tuple[str, ...] = ()) -> Run:
    """Point remote ``test`` at ``remote_url``, run ``lock --upgrade ARGS``: the lock stays."""
    before = (work / "images.lock.yaml").read_bytes()
    write_file(work, remote_url, certificate)
    run = run_cli(work, *global_args, "lock", "--upgrade", *args)
    assert (work / "images.lock.yaml").read_bytes() == before, "the old build was not kept"
    return run


# -- (a) huge and endless index files ---------------------------------------------------------

def test_an_endless_index_is_cut_at_the_cap_and_memory_stays_bounded(locked: Path) -> None:
    with misbehave("endless") as server:
        run = refuse_with(locked, server.url)
    record("endless index.json", run)
    line = run.error_line()
    assert line == (f"incus-images: error: remote 'test': {server.url}/{INDEX} is larger than "
                    "64 MiB, the most an index file may hold (it sends more); refusing to "
                    "read it")
    assert run.max_rss_kib < RSS_LIMIT_KIB, f"peak RSS {run.max_rss_kib} KiB"
    assert server.sent < 1 << 30  # the client hung up long before a gigabyte


def test_an_index_announcing_a_gigabyte_is_refused_before_reading(locked: Path) -> None:
    with misbehave("huge") as server:
        run = refuse_with(locked, server.url)
    record("index.json announcing 1 GiB", run)
    assert run.error_line() == (
        f"incus-images: error: remote 'test': {server.url}/{INDEX} is larger than 64 MiB, "
        "the most an index file may hold (it announces 1073741824 bytes); refusing to read it")
    assert run.max_rss_kib < RSS_LIMIT_KIB


def test_a_gzip_bomb_is_cut_at_the_cap_as_it_is_decoded(locked: Path) -> None:
    with misbehave("gzip") as server:
        run = refuse_with(locked, server.url)
    record("gzip bomb (128 MiB in under 1 MB)", run)
    assert "is larger than 64 MiB, the most an index file may hold (it sends more)" \
        in run.error_line()
    assert server.sent < 1 << 20
    assert run.max_rss_kib < RSS_LIMIT_KIB


def test_an_index_nested_past_what_json_follows_is_one_line(locked: Path) -> None:
    """Before: json's RecursionError escaped as an internal error (exit 3)."""
    with misbehave("deep") as server:
        run = refuse_with(locked, server.url)
    assert run.error_line() == ("incus-images: error: remote 'test': streams/v1/index.json is "
                                "not valid JSON: nested too deep to read")


# -- (b) redirects ------------------------------------------------------------------------------

def test_an_https_to_http_redirect_is_refused(locked: Path, ss_http: ServedTree,
                                              tls_files: TLSFiles) -> None:
    ss_http.reset()
    with misbehave("redirect", tls=tls_files, location=ss_http.url + "{path}") as server:
        run = refuse_with(locked, server.url, certificate=tls_files.ca_pem)
    record("https -> http redirect", run)
    assert run.error_line() == (
        f"incus-images: error: remote 'test': GET {server.url}/{INDEX} redirects to "
        f"{ss_http.url}/{INDEX}: refusing to follow a redirect from HTTPS to plain HTTP")
    assert ss_http.requests == []  # the plain-HTTP server was never asked


def test_an_https_to_https_redirect_is_followed(locked: Path, sstree: SimpleStreamsTree,
                                                ss_https: ServedTree) -> None:
    newer = sstree.add("tiny", "1.0", "20260102_0000")
    assert ss_https.tls is not None
    with misbehave("redirect", tls=ss_https.tls, location=ss_https.url + "{path}") as server:
        write_file(locked, server.url, ss_https.tls.ca_pem)
        run = run_cli(locked, "lock", "--upgrade")
    assert run.returncode == 0, run.stderr
    assert newer.fingerprint in (locked / "images.lock.yaml").read_text()
    assert ss_https.count(INDEX) == 1


def test_a_redirect_loop_ends_after_ten_redirects(tmp_path: Path) -> None:
    with misbehave("redirect", location="{path}") as server, HttpRemoteReader() as reader:
        with pytest.raises(RemoteError) as caught:
            reader.fetch_catalog(RemoteSpec(name="test", url=server.url,
                                            protocol="simplestreams"))
        assert str(caught.value) == (f"remote 'test': GET {server.url}/{INDEX}: more than 10 "
                                     "redirects")
        assert len(server.requests) == 11


# -- (c) stalled servers ------------------------------------------------------------------------

def test_a_silent_server_times_out_after_the_read_timeout(locked: Path) -> None:
    with misbehave("silent") as server:
        run = refuse_with(locked, server.url, "--read-timeout", "2")
    record("silent server, --read-timeout 2", run)
    assert run.error_line() == (f"incus-images: error: remote 'test': timed out after 2 s "
                                f"reading {server.url}/{INDEX} (--read-timeout)")
    assert 2 <= run.seconds < 2 + SLACK


def test_the_timeouts_are_also_global_options(locked: Path) -> None:
    with misbehave("silent") as server:
        run = refuse_with(locked, server.url, global_args=("--read-timeout", "1.5"))
    assert run.error_line().endswith(f"timed out after 1.5 s reading {server.url}/{INDEX} "
                                     "(--read-timeout)")
    assert 1.5 <= run.seconds < 1.5 + SLACK


@contextmanager
def full_backlog() -> Iterator[int]:
    """A TCP port on 127.0.0.1 whose accept queue is full: new connections hang in SYN."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        for _ in range(8):
            filler = socket.socket()
            filler.settimeout(0.3)
            fillers.append(filler)
            try:
                filler.connect(("127.0.0.1", port))
            except OSError:
                break
        else:
            pytest.fail("the accept queue never filled")
        yield port
    finally:
        for filler in fillers:
            filler.close()
        server.close()


def test_a_connection_that_hangs_times_out_once_after_the_connect_timeout(locked: Path) -> None:
    with full_backlog() as port:
        run = refuse_with(locked, f"http://127.0.0.1:{port}", "--connect-timeout", "2")
    record("connect never completes, --connect-timeout 2", run)
    assert run.error_line() == (f"incus-images: error: remote 'test': cannot connect to "
                                f"http://127.0.0.1:{port}: timed out after 2 s "
                                "(--connect-timeout)")
    assert 2 <= run.seconds < 2 + SLACK


def test_a_connect_timeout_is_not_retried(tmp_path: Path) -> None:
    """Refused connections are retried (twice); a connect timeout ends the wait at once."""
    with full_backlog() as port, HttpRemoteReader(connect_timeout=1, retries=2) as reader:
        start = time.monotonic()
        with pytest.raises(RemoteError, match="timed out after 1 s"):
            reader.fetch_catalog(RemoteSpec(name="test", url=f"http://127.0.0.1:{port}",
                                            protocol="simplestreams"))
        took = time.monotonic() - start
    assert 1 <= took < 2.5  # three attempts would take 3.6 s


def test_a_trickling_index_is_given_up_at_the_deadline(tmp_path: Path) -> None:
    """One byte every 0.2 s never trips a 5 s read timeout; the deadline ends it."""
    with misbehave("trickle", interval=0.2) as server, \
            HttpRemoteReader(read_timeout=5, index_deadline=2) as reader:
        remote = RemoteSpec(name="test", url=server.url, protocol="simplestreams")
        start = time.monotonic()
        with pytest.raises(RemoteError) as caught:
            reader.fetch_catalog(remote)
        took = time.monotonic() - start
    print(f"\n[faults] trickling index.json, deadline 2 s: failed after {took:.2f} s")
    assert str(caught.value) == (f"remote 'test': gave up reading {server.url}/{INDEX} after "
                                 "2 s (the most one index file may take; the server sends "
                                 "too slowly)")
    assert 2 <= took < 4


def test_a_body_that_stops_midway_times_out_after_the_read_timeout(tmp_path: Path) -> None:
    with misbehave("trickle", interval=30) as server, \
            HttpRemoteReader(read_timeout=1) as reader:
        start = time.monotonic()
        with pytest.raises(RemoteError) as caught:
            reader.fetch_catalog(RemoteSpec(name="test", url=server.url,
                                            protocol="simplestreams"))
        took = time.monotonic() - start
    assert str(caught.value) == (f"remote 'test': timed out after 1 s reading "
                                 f"{server.url}/{INDEX} (--read-timeout)")
    assert 1 <= took < 2.5


def test_a_small_cap_refuses_a_real_products_file(sstree: SimpleStreamsTree,
                                                  ss_http: ServedTree) -> None:
    sstree.add("tiny", "1.0", "20260101_0000")
    with HttpRemoteReader(max_index_bytes=200) as reader, pytest.raises(RemoteError) as caught:
        reader.fetch_catalog(RemoteSpec(name="test", url=ss_http.url, protocol="simplestreams"))
    assert "is larger than 200 bytes, the most an index file may hold" in str(caught.value)


# -- (d) a stopped daemon -----------------------------------------------------------------------

@contextmanager
def stopped(daemon: Incusd) -> Iterator[None]:
    """The test's own daemon stopped with SIGSTOP for the block, then continued."""
    assert daemon.pid is not None
    os.kill(daemon.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        with suppress(ProcessLookupError):
            os.kill(daemon.pid, signal.SIGCONT)


def test_a_stopped_daemon_is_given_up_on_within_the_read_timeout(world: World) -> None:
    world.tree.add("tiny", "1.0", "20260101_0000")
    world.write("images:\n  - source: test:tiny/1.0\n")
    socket_url = f"unix://{world.daemon.socket}"
    with stopped(world.daemon):
        plan = run_cli(world.dir, "plan", "--read-timeout", "3")
        apply = run_cli(world.dir, "apply", "--yes", "--read-timeout", "3")
    record("SIGSTOPped incusd, plan --read-timeout 3", plan)
    record("SIGSTOPped incusd, apply --read-timeout 3", apply)
    for run in (plan, apply):
        assert run.error_line() == (
            f"incus-images: error: target 'local': timed out after 3 s waiting for GET /1.0 "
            f"from {socket_url} (--read-timeout; is incusd stopped or overloaded?)")
        assert 3 <= run.seconds < 3 + SLACK
    assert world.cli("plan").returncode == 0  # continued, it answers again


def test_a_stopped_https_daemon_fails_the_tls_handshake_within_the_connect_timeout(
        world: World) -> None:
    daemon = world.daemon
    url = daemon.enable_https()
    cert = daemon.make_client_cert("faults-client")  # trusted
    for name, text in (("client.crt", cert.cert_pem), ("client.key", cert.key_pem),
                       ("server.crt", daemon.server_cert_pem())):
        (world.dir / name).write_text(text)
    world.tree.add("tiny", "1.0", "20260101_0000")
    targets = (f"targets:\n  prod:\n    url: {url}\n    client_cert: client.crt\n"
               "    client_key: client.key\n    server_cert: server.crt")
    world.write("images:\n  - source: test:tiny/1.0\n", targets=targets)
    assert world.cli("plan").returncode == 0
    with stopped(daemon):
        run = run_cli(world.dir, "plan", "--connect-timeout", "2")
    record("SIGSTOPped incusd over HTTPS, plan --connect-timeout 2", run)
    assert run.error_line() == (
        f"incus-images: error: target 'prod': cannot connect to {url}: the TLS handshake "
        "timed out after 2 s (--connect-timeout; is incusd stopped or overloaded?)")
    assert 2 <= run.seconds < 2 + SLACK
