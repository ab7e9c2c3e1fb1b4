"""A daemon's answer is read whole within a size cap and a deadline (``http.read_whole``):
one clear line when it is too big or too slow, and the connection is kept for the next
request when it is fine.

The daemon is a loopback unix-socket server scripted per test; the cap and the deadline
are lowered for the test (module constants read at each request), so nothing big is
sent and nothing waits long.
"""

from __future__ import annotations

import json
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.adapters import incus
from reconciler.adapters.incus import connect
from reconciler.errors import StoreError
from reconciler.model.config import TargetSpec
from tests.support.loopback import Serving

Answer = Callable[[socket.socket], None]
"""Writes the answer to one request on the connection."""


def _envelope(size: int = 0) -> bytes:
    return json.dumps({"type": "sync", "status_code": 200, "metadata": {
        "auth": "trusted", "config": {"user.pad": "x" * size},
        "environment": {"architectures": ["x86_64"]}}}).encode()


def whole(conn: socket.socket) -> None:
    body = _envelope()
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nETag: \"e\"\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def chunked(body: bytes, pause: float = 0.0) -> Answer:
    def send(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(body), 100):
            piece = body[i:i + 100]
            conn.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            time.sleep(pause)
        conn.sendall(b"0\r\n\r\n")
    return send


class Daemon:
    """Reads each request and answers it with ``answer``; counts connections."""

    def __init__(self, path: Path, answer: Answer) -> None:
        self.path = path
        self.answer = answer
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(path))
        self._serving = Serving(server, self._talk)

    @property
    def connections(self) -> int:
        return self._serving.connections

    def _talk(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                while conn.recv(65536):
                    self.answer(conn)
            except OSError:
                return

    def close(self) -> None:
        self._serving.close()


@pytest.fixture
def daemon_at() -> Iterator[Callable[[Answer], Daemon]]:
    folder = Path(tempfile.mkdtemp(prefix="ii-answers-", dir="/tmp"))
    made: list[Daemon] = []

    def make(answer: Answer) -> Daemon:
        made.append(Daemon(folder / "unix.socket", answer))
        return made[-1]

    try:
        yield make
    finally:
        for daemon in made:
            daemon.close()
        (folder / "unix.socket").unlink(missing_ok=True)
        folder.rmdir()


def _target(daemon: Daemon) -> TargetSpec:
    return TargetSpec(name="local", url=f"unix://{daemon.path}")


def test_answers_within_the_limits_are_read_and_the_connection_is_kept(
    daemon_at: Callable[[Answer], Daemon],
) -> None:
    daemon = daemon_at(whole)
    with connect(_target(daemon)) as store:
        for _ in range(3):
            config, etag = store.get_server_config()
            assert etag == '"e"' and "user.pad" in config
    assert daemon.connections == 1


def test_an_answer_announcing_more_than_the_cap_is_refused_unread(
    daemon_at: Callable[[Answer], Daemon], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(incus, "MAX_ANSWER_BYTES", 1 << 20)

    def huge(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 5000000000\r\n\r\n{")

    daemon = daemon_at(huge)
    with connect(_target(daemon)) as store, pytest.raises(StoreError) as err:
        store.get_server_config()
    assert str(err.value) == (
        f"target 'local': GET /1.0: refusing the answer of unix://{daemon.path}: it "
        "announces 5,000,000,000 bytes, more than the 1 MiB this tool reads")


def test_an_answer_that_sends_more_than_the_cap_is_refused(
    daemon_at: Callable[[Answer], Daemon], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(incus, "MAX_ANSWER_BYTES", 1 << 20)
    daemon = daemon_at(chunked(_envelope(2 << 20)))
    with connect(_target(daemon)) as store, pytest.raises(StoreError) as err:
        store.get_server_config()
    assert str(err.value).endswith("it sends more than the 1 MiB this tool reads")


def test_an_answer_trickling_past_the_deadline_is_refused(
    daemon_at: Callable[[Answer], Daemon], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each piece comes well within the read timeout; the whole never does."""
    monkeypatch.setattr(incus, "ANSWER_DEADLINE", 0.2)
    daemon = daemon_at(chunked(_envelope(2000), pause=0.05))
    with connect(_target(daemon)) as store, pytest.raises(StoreError) as err:
        store.get_server_config()
    assert str(err.value).endswith("it was still coming after 0.2 s, the most one answer "
                                   "may take")


def test_an_answer_nested_deeper_than_json_can_follow_is_not_an_api_answer(
    daemon_at: Callable[[Answer], Daemon],
) -> None:
    """json's decoder gives up past ~1,000 levels with a RecursionError: one line, not a
    crash, as for any answer that is not the daemon's JSON."""
    daemon = daemon_at(chunked(b'{"type":"sync","metadata":' + b"[" * 100_000))
    with connect(_target(daemon)) as store, pytest.raises(StoreError) as err:
        store.get_server_config()
    assert str(err.value) == (f"target 'local': GET /1.0: HTTP 200 from unix://{daemon.path} "
                              "is not an Incus API answer")
