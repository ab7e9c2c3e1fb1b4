"""Reads given up on an interrupt: the thread waiting for an answer gets an error at once,
the daemon sees its client go (Incus then stops listing, and config writes such as a
lease's release go through), and the store stays usable.

The daemon here is a server (on a unix socket, or HTTPS on 127.0.0.1) that never
answers ``GET /1.0/images`` (a list of thousands of images takes minutes) and answers
everything else.  No timeout is
waited for: every wait below ends on an event, bounded by a generous limit.
"""

from __future__ import annotations

import json
import signal
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import TypeVar

import pytest

from reconciler import pipeline
from reconciler.adapters.incus import connect
from reconciler.errors import Interrupted, StoreError
from reconciler.model.config import TargetSpec
from reconciler.model.observed import TargetState
from tests.support.fakes import FakeStore
from tests.support.loopback import Serving
from tests.support.ssserver import TLSFiles

_T = TypeVar("_T")

BOUND = 10.0
"""Seconds any wait below may take at most (each ends on an event long before)."""


class SilentOnLists:
    """Answers ``GET /1.0`` at once; reads a list request and never answers it.  On a unix
    socket, or over HTTPS on 127.0.0.1 (``tls``)."""

    def __init__(self, path: Path, tls: TLSFiles | None = None) -> None:
        self.listing = threading.Event()
        self.client_went = threading.Event()
        self.writing = threading.Event()
        self.answer_writes = threading.Event()
        self._tls: ssl.SSLContext | None = None
        if tls is None:
            self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._server.bind(str(path))
            self.url = f"unix://{path}"
        else:
            self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._tls.load_cert_chain(tls.cert, tls.key)
            self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._server.bind(("127.0.0.1", 0))
            self.url = f"https://127.0.0.1:{self._server.getsockname()[1]}"
        self._serving = Serving(self._server, self._talk)

    def _talk(self, client: socket.socket) -> None:
        body = json.dumps({"type": "sync", "status_code": 200, "metadata": {
            "auth": "trusted", "config": {}, "environment": {"architectures": ["x86_64"]}},
        }).encode()
        try:
            client.settimeout(BOUND)
            if self._tls is not None:
                client = self._tls.wrap_socket(client, server_side=True)
            with client:
                while request := client.recv(65536):
                    if request.startswith(b"GET /1.0/images"):
                        self.listing.set()
                        if client.recv(65536) == b"":  # the client went away
                            self.client_went.set()
                        return
                    if request.startswith(b"PATCH "):
                        self.writing.set()
                        self.answer_writes.wait(BOUND)
                    client.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                   b"ETag: \"e\"\r\nContent-Length: "
                                   + str(len(body)).encode() + b"\r\n\r\n" + body)
        except OSError:  # ssl.SSLError too: a client that went away mid-record
            self.client_went.set()

    def close(self) -> None:
        self._serving.close()


@pytest.fixture(params=["unix", "https"])
def daemon(request: pytest.FixtureRequest, tls_files: TLSFiles) -> Iterator[SilentOnLists]:
    folder = Path(tempfile.mkdtemp(prefix="ii-abandon-", dir="/tmp"))
    server = SilentOnLists(folder / "unix.socket", tls_files if request.param == "https" else None)
    try:
        yield server
    finally:
        server.close()
        (folder / "unix.socket").unlink(missing_ok=True)
        folder.rmdir()


def test_abandon_ends_a_read_under_way_and_the_daemon_sees_the_client_go(
    daemon: SilentOnLists, tls_files: TLSFiles,
) -> None:
    pinned = tls_files.ca_pem if daemon.url.startswith("https:") else None
    target = TargetSpec(name="local", url=daemon.url, server_cert=pinned)
    with connect(target) as store:
        outcome: Future[TargetState] = Future()
        _run(store.observe, outcome)
        assert daemon.listing.wait(BOUND)
        store.abandon()
        with pytest.raises(StoreError):
            outcome.result(BOUND)
        assert daemon.client_went.wait(BOUND)
        store.get_server_config()  # usable still: a new connection


def test_abandon_leaves_a_write_under_way_alone(daemon: SilentOnLists,
                                                tls_files: TLSFiles) -> None:
    """A lease's renewal held behind the list must not be cut with it: it lands."""
    pinned = tls_files.ca_pem if daemon.url.startswith("https:") else None
    target = TargetSpec(name="local", url=daemon.url, server_cert=pinned)
    with connect(target) as store:
        written: Future[str | None] = Future()
        listed: Future[TargetState] = Future()
        _run(lambda: store.patch_server_config({"user.x": "1"}, '"e"'), written)
        assert daemon.writing.wait(BOUND)
        _run(store.observe, listed)
        assert daemon.listing.wait(BOUND)
        store.abandon()
        with pytest.raises(StoreError):
            listed.result(BOUND)
        daemon.answer_writes.set()
        written.result(BOUND)  # no error: its connection was kept


def _run(work: Callable[[], _T], into: Future[_T]) -> None:
    def run() -> None:
        try:
            into.set_result(work())
        except BaseException as exc:
            into.set_exception(exc)

    threading.Thread(target=run, daemon=True).start()


class Blocked(FakeStore):
    """A store whose observation waits until the test lets it go."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.started = threading.Event()
        self.release = threading.Event()

    def observe(self) -> TargetState:
        self.started.set()
        self.release.wait(BOUND)
        return super().observe()


def test_an_interrupt_while_observing_abandons_only_the_reads_still_under_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slow, quick = Blocked("slow"), FakeStore("quick")
    monkeypatch.setattr(pipeline, "SLOW_SECONDS", 0.01)

    def interrupted(targets: object, waited: float) -> None:
        assert slow.started.wait(BOUND)
        raise Interrupted(signal.SIGTERM)

    try:
        with pytest.raises(Interrupted):
            pipeline.observe_each({"quick": quick, "slow": slow}, 2, on_slow=interrupted)
    finally:
        slow.release.set()
    assert "abandon" in slow.calls
    assert "abandon" not in quick.calls
