"""``reconciler.adapters.http``: the transports to a daemon, without a daemon.

* The unix-socket adapter is driven against a tiny HTTP server on a unix socket in a
  private directory under /tmp (no network at all).
* The HTTPS adapter's trust is read off its context and the pool settings it gives
  ``requests`` (no TLS server is needed to see them; the handshakes themselves are in
  ``tests/integration/test_tls_trust.py``).  Certificates come from the ``openssl``
  command (``tls_files``), since the TLS library reads every one it is given.
* :func:`timeout_kind` is checked on exceptions built the way ``requests`` and
  ``urllib3`` build them, so no test waits for a real timeout: nothing here
  depends on the clock.
"""

from __future__ import annotations

import os
import shutil
import socket
import socketserver
import ssl
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import requests
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from reconciler.adapters.http import (
    UNIX_BASE,
    DaemonTLSAdapter,
    Transport,
    UnixAdapter,
    exception_chain,
    open_transport,
    timeout_kind,
)
from reconciler.adapters.tls import tls_context
from tests.support.ssserver import TLSFiles

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"


# -- a tiny server on a unix socket ------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        server: _UnixServer = self.server  # type: ignore[assignment]
        server.seen.append((self.path, dict(self.headers.items())))
        body = b'{"type":"sync","metadata":{}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.connections = 0
        super().__init__(path, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        self.connections += 1
        conn, _ = self.socket.accept()
        return conn, ("unix", 0)  # BaseHTTPRequestHandler wants a (host, port) address


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A private directory under /tmp: AF_UNIX paths must stay below 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="ii-http-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def unix_server(sock_dir: Path) -> Iterator[_UnixServer]:
    server = _UnixServer(str(sock_dir / "unix.socket"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- open_transport ----------------------------------------------------------------------------

def test_a_unix_transport_sends_every_request_to_its_socket(unix_server: _UnixServer) -> None:
    path = unix_server.server_address
    assert isinstance(path, str)
    transport = open_transport(f"unix://{path}")
    try:
        assert (transport.base, transport.display, transport.socket_path, transport.pinned) == \
            (UNIX_BASE, f"unix://{path}", path, False)
        assert transport.session.trust_env is False  # no proxy may intercept the socket
        assert isinstance(transport.session.get_adapter(UNIX_BASE + "/1.0"), UnixAdapter)
        for _ in range(2):
            resp = transport.session.get(transport.base + "/1.0/images",
                                         params={"project": "p"}, timeout=(5, 5))
            assert resp.status_code == 200 and resp.json()["type"] == "sync"
    finally:
        transport.close()
    # the request line carries only the path and query (no scheme, no host)
    assert [p for p, _ in unix_server.seen] == ["/1.0/images?project=p"] * 2
    assert unix_server.seen[0][1]["User-Agent"] == "incus-images"
    assert unix_server.connections == 1  # the pooled connection is kept alive and reused


def test_a_missing_socket_is_a_connection_error_naming_the_path(sock_dir: Path) -> None:
    path = str(sock_dir / "gone.socket")
    transport = open_transport(f"unix://{path}")
    try:
        with pytest.raises(requests.exceptions.ConnectionError) as err:
            transport.session.get(transport.base + "/1.0", timeout=(1, 1))
    finally:
        transport.close()
    chain = list(exception_chain(err.value))
    refused = [e for e in chain if isinstance(e, NewConnectionError)]
    assert refused and path in str(refused[0])
    assert timeout_kind(err.value) is None  # refused is not a timeout


@pytest.mark.parametrize(("url", "path"), [
    ("unix:///var/lib/incus/unix.socket", "/var/lib/incus/unix.socket"),
    ("unix://relative/unix.socket", "relative/unix.socket"),
])
def test_unix_urls_give_the_socket_path(url: str, path: str) -> None:
    transport = open_transport(url)
    try:
        assert transport.socket_path == path
        adapter = transport.session.get_adapter(UNIX_BASE + "/1.0")
        assert isinstance(adapter, UnixAdapter) and adapter.socket_path == path
    finally:
        transport.close()


@pytest.mark.parametrize(("url", "kw", "message"), [
    ("unix://", {}, "no socket path"),
    ("http://127.0.0.1:8443", {}, "only unix:// and https://"),
    ("ftp://host", {}, "only unix:// and https://"),
    ("https://127.0.0.1:8443", {"client_cert": PEM}, "client_cert and client_key go together"),
    ("https://127.0.0.1:8443", {"client_key": KEY}, "client_cert and client_key go together"),
])
def test_unusable_urls_and_half_a_key_pair_are_value_errors(
        url: str, kw: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_transport(url, **kw)


def _ca_subjects(context: ssl.SSLContext) -> list[str]:
    """The common name of each CA the context trusts."""
    names: list[str] = []
    for ca in context.get_ca_certs():
        subject: Any = ca["subject"]
        names.extend(value for ((key, value),) in subject if key == "commonName")
    return names


def test_an_https_transport_with_a_pinned_certificate_and_a_client_key(
        tls_files: TLSFiles, no_system_cas: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files.ca_cert))  # not read: the pin is all
    transport = open_transport("https://10.0.0.1:8443/", client_cert=tls_files.cert_pem,
                               client_key=tls_files.key.read_text(),
                               server_cert=tls_files.cert_pem)
    try:
        assert (transport.base, transport.display, transport.socket_path, transport.pinned) == \
            ("https://10.0.0.1:8443", "https://10.0.0.1:8443/", None, True)
        adapter = transport.session.get_adapter("https://10.0.0.1:8443/1.0")
        assert isinstance(adapter, DaemonTLSAdapter) and adapter.pinned
        context = adapter.context()
        assert context.cert_store_stats()["x509"] == 1  # the pinned leaf, nothing else
        assert context.verify_flags & ssl.VERIFY_X509_PARTIAL_CHAIN
        # the pinned root never checks the host name: Incus certificates rarely name it
        _, pool_kwargs = adapter.build_connection_pool_key_attributes(
            requests.Request("GET", "https://10.0.0.1:8443/1.0").prepare(), True)
        assert pool_kwargs.get("assert_hostname") is False
    finally:
        transport.close()


def test_an_https_transport_without_a_pin_trusts_the_system_cas_and_checks_host_names(
        tls_files: TLSFiles, no_system_cas: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The system's CAs as OpenSSL finds them (here ``SSL_CERT_FILE``), as incusd and the
    incus client do: not certifi's bundle, which would list well over a hundred."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files.ca_cert))
    transport = open_transport("https://incus.example:8443")
    try:
        assert not transport.pinned
        adapter = transport.session.get_adapter("https://incus.example:8443/1.0")
        assert isinstance(adapter, DaemonTLSAdapter) and not adapter.pinned
        context = adapter.context()
        assert _ca_subjects(context) == ["incus-images test CA"]
        assert context.check_hostname
        _, pool_kwargs = adapter.build_connection_pool_key_attributes(
            requests.Request("GET", "https://incus.example:8443/1.0").prepare(), True)
        assert "assert_hostname" not in pool_kwargs
    finally:
        transport.close()


def test_the_adapter_ignores_the_verify_and_cert_requests_passes_it(
        tls_files: TLSFiles, no_system_cas: Path) -> None:
    """``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` become the per-request ``verify``, and
    ``verify=True`` makes ``requests`` point each pool at certifi's bundle: the adapter's
    pools get its own context whatever it is given, and nothing to load per connection."""
    adapter = DaemonTLSAdapter(lambda: tls_context(system_cas=False, pinned=tls_files.ca_pem),
                               pinned=True)
    request = requests.Request("GET", "https://10.0.0.1:8443/1.0").prepare()
    for verify, cert in (("/etc/ssl/env-bundle.pem", ("/other.crt", "/other.key")),
                         (False, None), (True, None)):
        _, pool_kwargs = adapter.build_connection_pool_key_attributes(request, verify, cert)
        assert pool_kwargs["ssl_context"] is adapter.context()
        assert pool_kwargs["cert_reqs"] == "CERT_REQUIRED"
        assert not {"ca_certs", "ca_cert_dir", "cert_file", "key_file"} & set(pool_kwargs)
        pool: Any = adapter.get_connection_with_tls_context(request, verify, cert=cert)
        adapter.cert_verify(pool, request.url or "", verify, cert)
        assert (pool.cert_reqs, pool.ca_certs, pool.ca_cert_dir, pool.cert_file) == \
            ("CERT_REQUIRED", None, None, None)
    adapter.close()


def test_an_env_ca_bundle_is_not_a_trust_root(tls_files: TLSFiles, no_system_cas: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_files.ca_cert))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(tls_files.ca_cert))
    transport = open_transport("https://10.0.0.1:8443")
    try:
        adapter = transport.session.get_adapter(transport.base + "/1.0")
        assert isinstance(adapter, DaemonTLSAdapter)
        assert adapter.context().cert_store_stats()["x509"] == 0
    finally:
        transport.close()


@pytest.mark.parametrize(("kw", "message"), [
    ({"server_cert": PEM},
     r"^server_cert: not a certificate the TLS library accepts \([^()]+\)$"),
    ({"client_cert": PEM, "client_key": KEY},
     r"^client_cert, client_key: not a certificate and its key that the TLS library "
     r"accepts \([^()]+\)$"),
])
def test_material_the_tls_library_refuses_fails_at_once_saying_which(
        kw: dict[str, str], message: str, tls_files: TLSFiles) -> None:
    with pytest.raises(ValueError, match=message):
        open_transport("https://10.0.0.1:8443", **kw)


def test_a_client_key_that_is_not_the_certificates_is_refused(tls_files: TLSFiles) -> None:
    other = tls_files.ca_key.read_text()
    with pytest.raises(ValueError, match=r"^client_cert, client_key: not a"):
        open_transport("https://10.0.0.1:8443", client_cert=tls_files.cert_pem,
                       client_key=other)


# -- Transport.close ---------------------------------------------------------------------------

def test_close_deletes_the_key_files_and_closes_the_session(
        monkeypatch: pytest.MonkeyPatch, tls_files: TLSFiles, private_files_made: list[str]
) -> None:
    made = private_files_made
    transport = open_transport("https://10.0.0.1:8443", client_cert=tls_files.cert_pem,
                               client_key=tls_files.key.read_text(),
                               server_cert=tls_files.cert_pem)
    assert len(made) == 2 and all(os.path.exists(f) for f in made)  # the client pair only
    closed: list[str] = []
    monkeypatch.setattr(requests.Session, "close",
                        lambda self: closed.append("session"))
    transport.close()
    assert closed == ["session"]
    assert not any(os.path.exists(f) for f in made)
    transport.close()  # idempotent
    assert closed == ["session", "session"]


def test_close_of_a_unix_transport_closes_its_pool(unix_server: _UnixServer) -> None:
    path = unix_server.server_address
    assert isinstance(path, str)
    transport = open_transport(f"unix://{path}")
    transport.session.get(transport.base + "/1.0", timeout=(5, 5))
    adapter = transport.session.get_adapter(UNIX_BASE + "/1.0")
    assert isinstance(adapter, UnixAdapter)
    pool = adapter._pool
    assert pool.num_connections == 1
    transport.close()
    assert pool.pool is None  # urllib3 drops the pool's queue when it is closed
    transport.close()


def test_a_transport_built_by_hand_closes_without_a_finalizer() -> None:
    transport = Transport(requests.Session(), "http://x", "x")
    transport.close()
    transport.close()


# -- timeout_kind --------------------------------------------------------------------------------

def _wrapped(reason: Exception, outer: type[requests.exceptions.RequestException]
             ) -> requests.exceptions.RequestException:
    """``requests``' own wrapping: a ``MaxRetryError`` with ``reason``, as argument of
    ``outer`` (see ``requests.adapters.HTTPAdapter.send``)."""
    return outer(MaxRetryError(None, "/1.0", reason))  # type: ignore[arg-type]


HANDSHAKE = TimeoutError("_ssl.c:989: The handshake operation timed out")


def _caused(exc: Exception, cause: BaseException) -> Exception:
    """``exc`` raised ``from cause`` (how urllib3's ``_raise_timeout`` wraps socket's)."""
    exc.__cause__ = cause
    return exc


def _read_timeout(cause: BaseException) -> requests.exceptions.ReadTimeout:
    """What a session with ``max_retries=0`` raises when a read times out: urllib3
    re-raises its ``ReadTimeoutError`` (raised from socket's ``TimeoutError``) and
    ``requests`` wraps it in ``ReadTimeout``."""
    inner = _caused(ReadTimeoutError(None, "/1.0", "Read timed out. (read timeout=30)"),  # type: ignore[arg-type]
                    cause)
    return requests.exceptions.ReadTimeout(inner)


@pytest.mark.parametrize(("exc", "kind"), [
    (requests.exceptions.ConnectTimeout("connect"), "connect"),
    (_wrapped(ConnectTimeoutError(None, "timed out"), requests.exceptions.ConnectTimeout),
     "connect"),
    (_wrapped(ConnectTimeoutError(None, "timed out"), requests.exceptions.ConnectionError),
     "connect"),
    # a refused connection is a NewConnectionError, which urllib3 derives from
    # ConnectTimeoutError: it is not a timeout
    (_wrapped(NewConnectionError(None, "refused"),  # type: ignore[arg-type]
              requests.exceptions.ConnectionError), None),
    (requests.exceptions.ReadTimeout("read"), "read"),
    (_read_timeout(TimeoutError("timed out")), "read"),
    (_wrapped(ReadTimeoutError(None, "/1.0", "read timed out"),  # type: ignore[arg-type]
              requests.exceptions.ConnectionError), "read"),
    # while the body is read: a ConnectionError around a ProtocolError around socket's
    (requests.exceptions.ConnectionError(ProtocolError("broken", TimeoutError("timed out"))),
     "read"),
    # a stalled TLS handshake surfaces as a read timeout, raised from socket's
    # TimeoutError whose text says "handshake"
    (_read_timeout(HANDSHAKE), "handshake"),
    (requests.exceptions.ConnectionError(HANDSHAKE), "handshake"),
    (requests.exceptions.SSLError("CERTIFICATE_VERIFY_FAILED"), None),
    (requests.exceptions.ConnectionError("Connection aborted."), None),
    (ValueError("not a transport failure"), None),
])
def test_timeout_kind(exc: BaseException, kind: str | None) -> None:
    assert timeout_kind(exc) == kind


def test_timeout_kind_follows_causes_and_contexts() -> None:
    try:
        try:
            raise HANDSHAKE
        except TimeoutError as inner:
            raise requests.exceptions.ConnectionError("wrapped") from inner
    except requests.exceptions.ConnectionError as exc:
        assert timeout_kind(exc) == "handshake"
    try:
        try:
            raise ReadTimeoutError(None, "/1.0", "read timed out")  # type: ignore[arg-type]
        except ReadTimeoutError:
            raise requests.exceptions.ConnectionError("during handling") from None
    except requests.exceptions.ConnectionError as exc:
        # ``from None`` hides the context from tracebacks, but it is still the context
        assert timeout_kind(exc) == "read"


def test_exception_chain_visits_each_exception_once_even_in_a_cycle() -> None:
    a = RuntimeError("a")
    b = RuntimeError("b", a)
    a.__cause__ = b
    assert [str(e) for e in exception_chain(b)] == [str(b), str(a)]
