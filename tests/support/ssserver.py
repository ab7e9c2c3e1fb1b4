"""Serve a directory (a simplestreams tree) over HTTP or HTTPS on 127.0.0.1, in-process.

* :func:`serve` is a context manager: a ``ThreadingHTTPServer`` on ``127.0.0.1``, port 0,
  in a daemon thread; it stops when the ``with`` block ends.  It yields a
  :class:`ServedTree` with the ``url`` and a log of every request path, so tests can
  assert how often a file was fetched; setting its ``file_delay`` makes image file
  downloads slow (to interrupt them), its ``rate`` throttles their bodies (so a
  download of a few MB takes as long as a real-size one); setting its ``auth``
  demands HTTP basic authentication.
* :func:`make_tls` creates a test CA and a server certificate for ``DNS:localhost`` and
  ``IP:127.0.0.1`` (EC P-384) with the ``openssl`` CLI.  The HTTPS server speaks TLS 1.2
  and 1.3 (the Incus daemon insists on 1.3).  Give the daemon ``TLSFiles.ca_pem`` as
  ``source.certificate``, or put the CA into its ``SSL_CERT_FILE`` bundle.

The TLS handshake runs in the connection's own thread, so a client that never
finishes it (or talks plain HTTP to the HTTPS port, as the daemon tries first)
does not block the server.
"""

from __future__ import annotations

import base64
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

THROTTLE_TICKS = 20
"""A throttled body is sent in ``rate / THROTTLE_TICKS``-byte chunks (20 a second)."""


@dataclass(frozen=True)
class TLSFiles:
    """PEM files of a test CA and of a server certificate it signed."""

    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path

    @property
    def ca_pem(self) -> str:
        """The CA certificate: what ``certificate:`` / ``source.certificate`` should hold."""
        return self.ca_cert.read_text()

    @property
    def cert_pem(self) -> str:
        """The server (leaf) certificate."""
        return self.cert.read_text()


def make_tls(directory: Path) -> TLSFiles:
    """A CA and a ``localhost`` / ``127.0.0.1`` server certificate under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    files = TLSFiles(ca_cert=directory / "ca.crt", ca_key=directory / "ca.key",
                     cert=directory / "server.crt", key=directory / "server.key")
    ext = directory / "server.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                   "basicConstraints=critical,CA:FALSE\n"
                   "keyUsage=critical,digitalSignature\n"
                   "extendedKeyUsage=serverAuth\n"
                   "subjectKeyIdentifier=hash\n"
                   "authorityKeyIdentifier=keyid,issuer\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", files.ca_key, "-out", files.ca_cert,
             "-days", "3650", "-subj", "/CN=incus-images test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    csr = directory / "server.csr"
    _openssl("req", *ec, "-keyout", files.key, "-out", csr, "-subj", "/CN=localhost")
    _openssl("x509", "-req", "-in", csr, "-CA", files.ca_cert, "-CAkey", files.ca_key,
             "-CAcreateserial", "-out", files.cert, "-days", "3650", "-sha384",
             "-extfile", ext)
    return files


def _openssl(*args: object) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


@dataclass
class ServedTree:
    """A running server: ``url`` (no trailing slash) and the paths it was asked for."""

    url: str
    root: Path
    tls: TLSFiles | None
    requests: list[str] = field(default_factory=list)
    """Every request path, in arrival order, as sent (``/streams/v1/index.json``)."""
    file_delay: float = 0.0
    """Seconds to wait before answering each request for an image file (``/images/...``):
    a slow download that tests can interrupt.  Index files are never delayed."""
    rate: int = 0
    """Bytes per second at which image file bodies are sent (0: as fast as possible).
    Index files are never throttled."""
    transfers: list[tuple[str, float]] = field(default_factory=list)
    """(path, seconds) of every throttled body sent in full."""
    auth: tuple[str, str] | None = None
    """(user, password): when set, every request without that HTTP basic authentication
    is answered 401, and its path is logged in :attr:`unauthorized`."""
    unauthorized: list[str] = field(default_factory=list)

    def count(self, path: str) -> int:
        """How many requests asked for ``path`` (leading ``/`` and query ignored)."""
        want = "/" + path.lstrip("/")
        return sum(1 for p in list(self.requests) if urlsplit(p).path == want)

    def reset(self) -> None:
        """Forget the requests logged so far."""
        self.requests.clear()


class _Handler(SimpleHTTPRequestHandler):
    timeout = 30

    def __init__(self, *args: Any, log: list[str], lock: threading.Lock, **kwargs: Any) -> None:
        self._log = log
        self._lock = lock
        super().__init__(*args, **kwargs)

    def send_head(self) -> Any:
        with self._lock:
            self._log.append(self.path)
        served = getattr(self.server, "served", None)
        if served is not None and served.auth is not None:
            token = base64.b64encode(":".join(served.auth).encode()).decode()
            if self.headers.get("Authorization") != f"Basic {token}":
                with self._lock:
                    served.unauthorized.append(self.path)
                self.send_error(401, "Unauthorized")
                return None
        if served is not None and served.file_delay > 0 \
                and urlsplit(self.path).path.startswith("/images/"):
            time.sleep(served.file_delay)
        return super().send_head()

    def copyfile(self, source: Any, outputfile: Any) -> None:
        """Send the body; an image file's at ``served.rate`` bytes per second, if set."""
        served = getattr(self.server, "served", None)
        rate = served.rate if served is not None else 0
        if rate <= 0 or not urlsplit(self.path).path.startswith("/images/"):
            super().copyfile(source, outputfile)
            return
        chunk = max(1, rate // THROTTLE_TICKS)
        start = time.monotonic()
        sent = 0
        while data := source.read(chunk):
            try:
                outputfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                return  # the client gave up (a cancelled download)
            sent += len(data)
            ahead = sent / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
        if served is not None:
            served.transfers.append((urlsplit(self.path).path, time.monotonic() - start))

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean


class TLSCapableServer(ThreadingHTTPServer):
    """A threading HTTP server that speaks TLS on each connection when ``tls_context``
    is set; ``socket_timeout`` bounds every read and write of a connection."""

    daemon_threads = True
    tls_context: ssl.SSLContext | None = None
    socket_timeout: float = 30

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls_context is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(self.socket_timeout)
        try:
            wrapped = self.tls_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # failed handshake: the client sees it, the server carries on
        try:
            super().finish_request(wrapped, client_address)
        finally:
            with suppress(OSError):
                wrapped.shutdown(socket.SHUT_RDWR)
            wrapped.close()


class _Server(TLSCapableServer):
    served: ServedTree | None = None


@contextmanager
def serve(root: Path, tls: TLSFiles | None = None) -> Iterator[ServedTree]:
    """Serve ``root`` on ``127.0.0.1`` (HTTPS with ``tls``) until the block ends."""
    lock = threading.Lock()
    log: list[str] = []
    handler = partial(_Handler, directory=str(root), log=log, lock=lock)
    server = _Server(("127.0.0.1", 0), handler)
    scheme = "http"
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(tls.cert, tls.key)
        server.tls_context = context
        scheme = "https"
    port = server.server_address[1]
    served = ServedTree(url=f"{scheme}://127.0.0.1:{port}", root=root, tls=tls, requests=log)
    server.served = served
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name=f"ssserver-{port}", daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
