"""An HTTP ``CONNECT`` proxy on 127.0.0.1 for tests: what ``HTTPS_PROXY`` points at.

It tunnels to 127.0.0.1 only (anything else is answered 403) and records each tunnel's
target.  Bounded: every socket has a timeout, and :meth:`ConnectProxy.close` stops
accepting (tunnels end with their peers).
"""

from __future__ import annotations

import select
import socket
from contextlib import suppress

from tests.support.loopback import Serving

TIMEOUT = 10.0


class ConnectProxy:
    """``url`` is the proxy's address; ``tunnels`` lists the ``host:port`` of each CONNECT."""

    def __init__(self) -> None:
        self.tunnels: list[str] = []
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        self._serving = Serving(listener, self._tunnel)

    def close(self) -> None:
        self._serving.close()

    def _tunnel(self, client: socket.socket) -> None:
        client.settimeout(TIMEOUT)
        with client:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                data = client.recv(4096)
                if not data:
                    return
                head += data
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            host, _, port = target.rpartition(":")
            if method != "CONNECT" or host != "127.0.0.1":
                client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            self.tunnels.append(target)
            with socket.create_connection((host, int(port)), timeout=TIMEOUT) as upstream:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                _pipe(client, upstream)


def _pipe(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until either side closes or is quiet for TIMEOUT."""
    peers = {a: b, b: a}
    while True:
        ready, _, _ = select.select(list(peers), [], [], TIMEOUT)
        if not ready:
            return
        for sock in ready:
            with suppress(OSError):
                data = sock.recv(65536)
                if data:
                    peers[sock].sendall(data)
                    continue
            return
