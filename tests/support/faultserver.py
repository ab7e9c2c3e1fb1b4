"""Misbehaving HTTP(S) servers on 127.0.0.1, for fault tests of the remote reader.

:func:`misbehave` is a context manager: a ``ThreadingHTTPServer`` on ``127.0.0.1``,
port 0, in a daemon thread, that answers every GET the way ``mode`` says:

* ``endless``: ``200`` with no ``Content-Length``, then JSON-looking bytes until the
  client goes away (an index file that never ends).
* ``huge``: the same, but announcing ``Content-Length: 1 GiB``.
* ``redirect``: ``302`` to ``location`` (``{path}`` in it is replaced by the request path).
* ``silent``: reads the request and never answers.
* ``trickle``: ``200`` announcing 1 MB, then one byte every ``interval`` seconds.
* ``gzip``: ``200`` with ``Content-Encoding: gzip``: 128 MiB of JSON-looking bytes
  squeezed into well under 1 MB (a decompression bomb).
* ``deep``: ``200`` with 200 KB of valid JSON nested 100,000 levels deep.

Bounded in time and bytes whatever the client does: a handler stops after
:data:`MAX_SECONDS`, after :data:`MAX_BYTES`, when the client closes, or when the
``with`` block ends.  Nothing listens anywhere but 127.0.0.1.
"""

from __future__ import annotations

import gzip
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal

from tests.support.ssserver import TLSCapableServer, TLSFiles

Mode = Literal["endless", "huge", "redirect", "silent", "trickle", "gzip", "deep"]
MAX_SECONDS = 60.0
MAX_BYTES = 3 << 30
CHUNK = b"x" * (1 << 20)
_BOMB: list[bytes] = []


def _bomb() -> bytes:
    """128 MiB of ``{"index": {"x": "xxx...`` gzipped (made once)."""
    if not _BOMB:
        _BOMB.append(gzip.compress(b'{"index": {"x": "' + b"x" * (128 << 20), 6))
    return _BOMB[0]


@dataclass
class Misbehaving:
    """A running server: its ``url`` (no trailing slash) and what it did."""

    url: str
    requests: list[str] = field(default_factory=list)
    sent: int = 0
    """Body bytes sent, all requests together."""


class _Handler(BaseHTTPRequestHandler):
    def __init__(self, *args: Any, mode: Mode, location: str, interval: float,
                 served: Misbehaving, stop: threading.Event, **kwargs: Any) -> None:
        self.mode, self.location, self.interval = mode, location, interval
        self.served, self.stop = served, stop
        super().__init__(*args, **kwargs)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.served.requests.append(self.path)
        deadline = time.monotonic() + MAX_SECONDS
        if self.mode == "silent":
            self.stop.wait(MAX_SECONDS)
            return
        if self.mode == "redirect":
            self.send_response(302)
            self.send_header("Location", self.location.replace("{path}", self.path))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if self.mode == "gzip":
            body = _bomb()
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with suppress(OSError):
                self.wfile.write(body)
                self.served.sent += len(body)
            return
        if self.mode == "deep":  # valid JSON, nested past what json's decoder follows
            body = b"[" * 100_000 + b"]" * 100_000
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with suppress(OSError):
                self.wfile.write(body)
                self.served.sent += len(body)
            return
        if self.mode == "huge":
            self.send_header("Content-Length", str(1 << 30))
        elif self.mode == "trickle":
            self.send_header("Content-Length", str(10**6))
        self.end_headers()
        with suppress(OSError):
            self.wfile.write(b'{"index": {"x": "')
            self.wfile.flush()
            while not self.stop.is_set() and time.monotonic() < deadline \
                    and self.served.sent < MAX_BYTES:
                if self.mode == "trickle":
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    self.served.sent += 1
                    self.stop.wait(self.interval)
                else:
                    self.wfile.write(CHUNK)
                    self.served.sent += len(CHUNK)


class _Server(TLSCapableServer):
    socket_timeout = MAX_SECONDS


@contextmanager
def misbehave(mode: Mode, *, tls: TLSFiles | None = None, location: str = "",
              interval: float = 1.0) -> Iterator[Misbehaving]:
    """Serve ``mode`` on ``127.0.0.1`` (HTTPS with ``tls``) until the block ends."""
    stop = threading.Event()
    served = Misbehaving(url="")
    handler = partial(_Handler, mode=mode, location=location, interval=interval,
                      served=served, stop=stop)
    server = _Server(("127.0.0.1", 0), handler)
    scheme = "http"
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.cert, tls.key)
        server.tls_context = context
        scheme = "https"
    served.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name=f"faultserver-{mode}", daemon=True)
    thread.start()
    try:
        yield served
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
