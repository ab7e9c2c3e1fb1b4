"""A peer that closes the connection after the request went out, before its whole answer:
one clear line naming that, for a daemon (unix socket) and a remote (HTTP on 127.0.0.1).

The servers here read one request and then close (``silent``) or send half an answer
first (``half``): what a daemon that stops or restarts mid-request, or a proxy that
cuts the connection, looks like.  Nothing waits for a timeout.
"""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import pytest
import requests
from urllib3.exceptions import NewConnectionError, ProtocolError

from reconciler.adapters.http import DROPPED, failure_kind
from reconciler.adapters.incus import connect
from reconciler.adapters.remotes.reader import HttpRemoteReader
from reconciler.errors import RemoteError, StoreError
from reconciler.model.config import RemoteSpec, TargetSpec
from tests.support.loopback import Serving

Mode = Literal["silent", "half"]
HALF = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a"'


def _drop(client: socket.socket, mode: Mode) -> None:
    """Read the request; send half an answer (``half``) or nothing; close."""
    with client:
        client.settimeout(5)
        try:
            client.recv(65536)
            if mode == "half":
                client.sendall(HALF)
        except OSError:
            pass


@contextmanager
def dropping(family: int, address: str | tuple[str, int], mode: Mode) -> Iterator[socket.socket]:
    server = socket.socket(family, socket.SOCK_STREAM)
    server.bind(address)
    serving = Serving(server, lambda client: _drop(client, mode))
    try:
        yield server
    finally:
        serving.close()


@pytest.mark.parametrize("mode", ["silent", "half"])
def test_a_daemon_that_drops_the_connection_is_one_line_saying_so(mode: Mode) -> None:
    folder = Path(tempfile.mkdtemp(prefix="ii-drop-", dir="/tmp"))
    path = folder / "unix.socket"
    try:
        with dropping(socket.AF_UNIX, str(path), mode), \
                connect(TargetSpec(name="local", url=f"unix://{path}")) as store, \
                pytest.raises(StoreError) as err:
            store.observe()
    finally:
        path.unlink(missing_ok=True)
        folder.rmdir()
    message = str(err.value)
    assert message == (f"target 'local': GET /1.0 to unix://{path}: {DROPPED} "
                       "(did incusd stop or restart?)")
    assert "\n" not in message


@pytest.mark.parametrize("mode", ["silent", "half"])
def test_a_remote_that_drops_the_connection_is_one_line_saying_so(mode: Mode) -> None:
    with dropping(socket.AF_INET, ("127.0.0.1", 0), mode) as server:
        port = server.getsockname()[1]
        remote = RemoteSpec(name="test", url=f"http://127.0.0.1:{port}",
                            protocol="simplestreams")
        with HttpRemoteReader(retries=0) as reader, pytest.raises(RemoteError) as err:
            reader.fetch_catalog(remote)
    message = str(err.value)
    assert f"GET http://127.0.0.1:{port}/streams/v1/index.json: {DROPPED}" in message, message
    assert "\n" not in message


@pytest.mark.parametrize(("exc", "kind"), [
    (requests.exceptions.ConnectionError(ProtocolError(
        "Connection aborted.", ConnectionResetError("Remote end closed connection"))),
     "dropped"),
    (requests.exceptions.ChunkedEncodingError(ProtocolError("Connection broken: IncompleteRead")),
     "dropped"),
    (requests.exceptions.ConnectionError(NewConnectionError(  # type: ignore[arg-type]
        None, "Connection refused")), "connect"),
    (requests.exceptions.ConnectionError("Connection refused"), "connect"),
])
def test_a_dropped_connection_is_not_a_refused_one(exc: BaseException, kind: str) -> None:
    assert failure_kind(exc) == kind
