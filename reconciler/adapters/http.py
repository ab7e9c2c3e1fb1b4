"""HTTP transports to an Incus daemon: its unix socket, or HTTPS with a client certificate.

:func:`open_transport` turns a target URL plus PEM texts into a :class:`Transport`: a
``requests.Session`` and the base URL to prefix paths with.

Invariants:

* No new dependency: the unix-socket transport is a ``requests`` adapter over a
  ``urllib3`` connection that connects ``AF_UNIX``.
* The HTTPS adapter owns its TLS settings (:mod:`reconciler.adapters.tls`): neither
  ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` nor certifi's bundle decides whom a daemon
  connection trusts.
* A pinned ``server_cert`` is the only trust root (even a certificate that is not
  self-signed), and the host name is not checked against it, as the incus client does
  (``TLSConfigWithTrustedCert``): Incus server certificates rarely name the host they
  are reached by.  Without ``server_cert`` the system's CAs (``SSL_CERT_FILE``,
  ``SSL_CERT_DIR``, else the distribution's) and the normal host name check apply.
* A certificate or key the TLS library refuses fails :func:`open_transport` with a
  ``ValueError`` saying which.
* Key material is only ever in :class:`~reconciler.adapters.private_files.PrivateFiles`:
  memory files that vanish with the process, however it ends (a private temporary
  directory where Linux memory files are not available).  :meth:`Transport.close`
  closes them (a finalizer does too if ``close`` is forgotten).
* :func:`timeout_kind` is the one place that tells a connect timeout, a stalled TLS
  handshake and a read timeout apart, however ``requests``/``urllib3`` wrapped them
  (a read timeout can surface as a ``ConnectionError`` when retries are configured
  or when it strikes while the body is read).
* :func:`failure_kind` is the one translation of a ``requests`` failure into what
  went wrong (a timeout of each kind, TLS, no connection, a connection dropped before
  the answer was whole, anything else), and
  :func:`failure_reason` the one short human reason for it; :func:`connect_timed_out`
  words the two waits that end before any answer the same for daemons and remotes.
  Each adapter adds only what it knows: whom it was talking to and what to try.
* :func:`read_whole` reads a streamed answer within a size cap and a deadline (the read
  timeout bounds each wait only: a peer trickling bytes would never trip it).
* Every connection a transport opens stays in view (:class:`Live`), so that the reads
  under way can be given up from another thread (:meth:`Transport.abandon`); writes
  under way are never cut.
"""

from __future__ import annotations

import errno
import functools
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from reconciler.adapters.private_files import PrivateFiles
from reconciler.adapters.tls import OwnTLSAdapter, tls_context
from reconciler.timeouts import CONNECT_OPTION, seconds

if TYPE_CHECKING:
    from urllib3._base_connection import BaseHTTPSConnection

UNIX_BASE = "http://incus.socket"
"""The base URL of a unix-socket transport; the host part is never resolved."""


TimeoutKind = Literal["connect", "handshake", "read"]


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it wraps (causes, contexts, urllib3 reasons, args)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested = [current.__cause__, current.__context__, getattr(current, "reason", None),
                  *current.args]
        todo.extend(e for e in nested if isinstance(e, BaseException))


def timeout_kind(exc: BaseException) -> TimeoutKind | None:
    """Which wait ran out in ``exc``, a failure of ``requests``: None if none did.

    ``connect``: establishing the connection; ``handshake``: the TLS handshake (bounded
    by the connect timeout, but reported by urllib3 as a read timeout); ``read``:
    waiting for the answer or the next bytes of its body.
    """
    chain = list(exception_chain(exc))
    if any(isinstance(e, requests.exceptions.ConnectTimeout) or (
            isinstance(e, ConnectTimeoutError) and not isinstance(e, NewConnectionError))
           for e in chain):
        return "connect"
    if any(isinstance(e, TimeoutError) and "handshake" in str(e) for e in chain):
        return "handshake"
    if any(isinstance(e, (requests.exceptions.ReadTimeout, ReadTimeoutError, TimeoutError))
           for e in chain):
        return "read"
    return None


FailureKind = Literal["connect_timeout", "handshake_timeout", "read_timeout", "tls", "connect",
                      "dropped", "other"]
ConnectTimeoutKind = Literal["connect_timeout", "handshake_timeout"]


def failure_kind(exc: BaseException) -> FailureKind:
    """What went wrong in ``exc``, a failure of ``requests``.

    A timeout is reported as such whatever wraps it (see :func:`timeout_kind`);
    otherwise a TLS failure (``SSLError``) comes before the ``ConnectionError`` it
    subclasses; a connection the peer closed or reset after the request went out,
    before the whole answer came (``urllib3``'s ``ProtocolError``: the peer stopped or
    restarted, or a proxy cut it), is ``dropped``; everything else is ``other``.
    """
    kind = timeout_kind(exc)
    if kind == "connect":
        return "connect_timeout"
    if kind == "handshake":
        return "handshake_timeout"
    if kind == "read":
        return "read_timeout"
    if isinstance(exc, requests.exceptions.SSLError):
        return "tls"
    if find_in_chain(exc, ProtocolError) is not None \
            and find_in_chain(exc, NewConnectionError) is None:
        return "dropped"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "connect"
    return "other"


def find_in_chain(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The first exception of type ``kind`` in ``exc``'s chain, or None."""
    return next((e for e in exception_chain(exc) if isinstance(e, kind)), None)


def failure_reason(exc: BaseException) -> str:
    """A short human reason: "connection refused", "certificate has expired", ..."""
    chain = list(exception_chain(exc))
    for inner in chain:
        if isinstance(inner, ssl.SSLCertVerificationError) and inner.verify_message:
            return str(inner.verify_message)
    for inner in chain:
        if isinstance(inner, ssl.SSLError) and inner.reason:
            return str(inner.reason).lower().replace("_", " ")
    for inner in chain:
        if isinstance(inner, OSError) and inner.errno is not None and inner.strerror:
            if inner.errno == errno.ECONNREFUSED:
                return "connection refused"
            return inner.strerror[:1].lower() + inner.strerror[1:]
    return str(chain[-1]) or type(chain[-1]).__name__


DROPPED = "the connection was closed before the whole answer came"
"""The words for a ``dropped`` failure (:func:`failure_kind`), daemons and remotes alike."""


def connect_timed_out(kind: ConnectTimeoutKind, where: str, connect_timeout: float,
                      hint: str | None = None) -> str:
    """``cannot connect to W: timed out after N s (--connect-timeout[; hint])``.

    The same words for a daemon and a remote; ``hint`` is what the caller suggests.
    """
    waited = "the TLS handshake timed out" if kind == "handshake_timeout" else "timed out"
    note = CONNECT_OPTION + (f"; {hint}" if hint else "")
    return f"cannot connect to {where}: {waited} after {seconds(connect_timeout)} ({note})"


class _MarksReads(HTTPConnection):
    """A connection that knows whether its request under way (or its last) only reads."""

    reading = False

    def putrequest(self, method: str, url: str, skip_host: bool = False,
                   skip_accept_encoding: bool = False) -> None:
        self.reading = method in ("GET", "HEAD")
        super().putrequest(method, url, skip_host=skip_host,
                           skip_accept_encoding=skip_accept_encoding)


class AnswerRefused(requests.exceptions.RequestException):
    """An answer this tool will not read whole (:func:`read_body`), ``why`` in words: it
    ``announced`` a size over the limit, or sent more (``announced`` None), or was still
    coming at the deadline (``too_slow``)."""

    def __init__(self, why: str, *, announced: int | None = None,
                 too_slow: bool = False) -> None:
        super().__init__(why)
        self.why = why
        self.announced = announced
        self.too_slow = too_slow


ANSWER_CHUNK = 64 << 10
"""The most one read of an answer asks for (a read returns what has come, up to this)."""


def read_body(response: requests.Response, *, limit: int, deadline: float,
              started: float | None = None) -> bytearray:
    """The whole (decoded) body of a streamed ``response``: at most ``limit`` bytes, and
    within ``deadline`` seconds of ``started`` (``time.monotonic()``; default: now).  A
    peer that sends without end, or trickles bytes just fast enough for every read's
    timeout, is refused with :class:`AnswerRefused`.

    Reads with ``read1`` (one socket read at a time), so that the deadline is checked
    however slowly the bytes come.  A failure to read is raised as ``requests`` raises
    it for an answer read whole (a ``ConnectionError`` around ``urllib3``'s), so
    :func:`failure_kind` applies.
    """
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise AnswerRefused(f"it announces {int(declared):,} bytes, more than the "
                            f"{limit >> 20} MiB this tool reads", announced=int(declared))
    body = bytearray()
    until = (time.monotonic() if started is None else started) + deadline
    try:
        while chunk := response.raw.read1(ANSWER_CHUNK, decode_content=True):
            body += chunk
            if len(body) > limit:
                raise AnswerRefused(f"it sends more than the {limit >> 20} MiB this tool reads")
            if time.monotonic() > until:
                raise AnswerRefused(f"it was still coming after {seconds(deadline)}, the "
                                    "most one answer may take", too_slow=True)
    except AnswerRefused:
        raise
    except (HTTPError, OSError) as exc:
        raise requests.exceptions.ConnectionError(exc, response=response) from exc
    return body


def read_whole(response: requests.Response, *, limit: int, deadline: float) -> None:
    """Read a streamed ``response``'s body into it (:func:`read_body`), so that
    ``response.content`` and ``.json()`` work and its connection goes back to the pool.

    Sets ``requests``' own two attributes for a body already read: the one place this
    module relies on them.
    """
    if response.raw is None:  # made in memory, its body with it: nothing to read
        response._content_consumed = True  # type: ignore[attr-defined]
        return
    response._content = bytes(read_body(response, limit=limit, deadline=deadline))
    response._content_consumed = True  # type: ignore[attr-defined]  # (untyped in the stubs)


class Live:
    """The connections a transport opened, so that the reads under way can be given up.

    A thread blocked reading an answer cannot be stopped from another; shutting its
    socket down can: the read ends with an error at once, and the daemon sees its
    client go.  Incus holds every config write (``PATCH /1.0``, a lease's release or
    renewal) while it lists images, and stops listing for a client that went away.
    Writes under way are left alone: whether one landed matters, and its caller waits.
    """

    def __init__(self) -> None:
        self._connections: weakref.WeakSet[_MarksReads] = weakref.WeakSet()
        self._lock = threading.Lock()

    def add(self, connection: _MarksReads) -> None:
        """Keep ``connection`` in view while it exists."""
        with self._lock:
            self._connections.add(connection)

    def cut_reads(self) -> None:
        """Shut down the socket of every open connection whose request only reads (idle
        pooled ones too: the pool drops them and the next request opens another)."""
        with self._lock:
            connections: list[_MarksReads] = list(self._connections)
        for connection in connections:
            sock = connection.sock  # None while not connected
            if connection.reading and sock is not None:
                with suppress(OSError):  # already closed
                    # socket's own shutdown: an SSLSocket's would also drop its TLS
                    # state under a thread still reading through it
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)


class UnixHTTPConnection(_MarksReads):
    """An HTTP/1.1 connection whose socket is a unix stream socket."""

    def __init__(self, socket_path: str, **kwargs: Any) -> None:
        self.socket_path = socket_path
        super().__init__("localhost", **kwargs)

    def _new_conn(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        timeout = self.timeout
        if isinstance(timeout, (int, float)):
            sock.settimeout(timeout)
        try:
            sock.connect(self.socket_path)
        except OSError as exc:
            sock.close()
            raise NewConnectionError(self, f"{self.socket_path}: {exc.strerror or exc}") from exc
        return sock


class UnixHTTPConnectionPool(HTTPConnectionPool):
    """A pool of :class:`UnixHTTPConnection` to one socket path."""

    ConnectionCls = UnixHTTPConnection

    def __init__(self, socket_path: str, live: Live, **kwargs: Any) -> None:
        super().__init__("localhost", **kwargs)
        self.socket_path = socket_path
        self.live = live

    def _new_conn(self) -> HTTPConnection:
        self.num_connections += 1
        connection = UnixHTTPConnection(self.socket_path,
                                        timeout=self.timeout.connect_timeout, **self.conn_kw)
        self.live.add(connection)
        return connection


class UnixAdapter(HTTPAdapter):
    """Sends every request of the URL prefix it is mounted on to one unix socket."""

    def __init__(self, socket_path: str, pool_maxsize: int = 4) -> None:
        self.socket_path = socket_path
        self.live = Live()
        """Its connections (:meth:`Transport.abandon`)."""
        self._pool = UnixHTTPConnectionPool(socket_path, self.live, maxsize=pool_maxsize)
        super().__init__(pool_connections=1, pool_maxsize=pool_maxsize, max_retries=0)

    def get_connection_with_tls_context(
        self, request: requests.PreparedRequest, verify: bool | str | None,
        proxies: Mapping[str, str] | None = None, cert: Any = None,
    ) -> HTTPConnectionPool:
        return self._pool

    def get_connection(self, url: str | bytes, proxies: Mapping[str, str] | None = None) -> Any:
        return self._pool

    def request_url(
        self, request: requests.PreparedRequest, proxies: Mapping[str, str] | None
    ) -> str:
        return request.path_url

    def close(self) -> None:
        self._pool.close()
        super().close()


class DaemonTLSAdapter(OwnTLSAdapter):
    """HTTPS to a daemon: the trust and client certificate of ``make_context``
    (:mod:`reconciler.adapters.tls`), whatever the environment says; with a ``pinned``
    certificate the host name is not checked.  Every connection joins :attr:`live`."""

    def __init__(self, make_context: Callable[[], ssl.SSLContext], *, pinned: bool) -> None:
        self.pinned = pinned
        self.live = Live()
        """Its connections (:meth:`Transport.abandon`)."""
        super().__init__(make_context, host=False if pinned else None, max_retries=0)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False,
                         **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            **self.poolmanager.pool_classes_by_scheme, "https": _live_https_pool(self.live)}


class _LiveHTTPSConnection(_MarksReads, HTTPSConnection):
    """An HTTPS connection that knows whether its request only reads."""


def _live_https_pool(live: Live) -> type[HTTPSConnectionPool]:
    """An HTTPS pool class whose every new connection joins ``live``."""

    class LiveHTTPSConnectionPool(HTTPSConnectionPool):
        ConnectionCls = _LiveHTTPSConnection

        def _new_conn(self) -> BaseHTTPSConnection:
            connection = super()._new_conn()
            if isinstance(connection, _LiveHTTPSConnection):
                live.add(connection)
            return connection

    return LiveHTTPSConnectionPool


@dataclass
class Transport:
    """A session bound to one daemon.  ``base`` + ``/1.0/...`` is a full request URL.

    ``display`` is the URL as the user wrote it (for messages); ``socket_path`` is set
    for unix-socket transports.
    """

    session: requests.Session
    base: str
    display: str
    socket_path: str | None = None
    pinned: bool = False
    live: Live = field(default_factory=Live, repr=False)
    _secrets: PrivateFiles | None = field(default=None, repr=False)
    _finalizer: weakref.finalize[Any, Any] | None = field(default=None, repr=False)

    def abandon(self) -> None:
        """Give up the reads under way (:meth:`Live.cut_reads`); the transport stays usable."""
        self.live.cut_reads()

    def close(self) -> None:
        """Close the connections and delete the key files.  Idempotent."""
        self.session.close()
        if self._finalizer is not None:
            self._finalizer()


def open_transport(
    url: str, *, client_cert: str | None = None, client_key: str | None = None,
    server_cert: str | None = None,
) -> Transport:
    """A transport for ``unix:///path/to/unix.socket`` or ``https://host:port``.

    Certificates and keys are PEM texts.  Raises ``ValueError`` for another scheme or
    a client certificate without its key (callers turn it into their own error).
    """
    parts = urlsplit(url)
    session = requests.Session()
    session.headers["User-Agent"] = "incus-images"
    if parts.scheme == "unix":
        path = (parts.netloc + parts.path) if parts.netloc else parts.path
        if not path:
            raise ValueError(f"{url}: no socket path")
        session.trust_env = False  # no proxy may intercept a local socket
        unix = UnixAdapter(path)
        session.mount(UNIX_BASE + "/", unix)
        return Transport(session, UNIX_BASE, url, socket_path=path, live=unix.live)
    if parts.scheme != "https":
        raise ValueError(f"{url}: only unix:// and https:// targets are supported")
    if (client_cert is None) != (client_key is None):
        raise ValueError(f"{url}: client_cert and client_key go together")
    secrets = PrivateFiles("incus-images-tls-")
    finalizer = weakref.finalize(session, secrets.close)
    try:
        cert = None
        if client_cert is not None and client_key is not None:
            cert = (secrets.add("client.crt", client_cert),
                    secrets.add("client.key", client_key))
        tls = DaemonTLSAdapter(functools.partial(tls_context, system_cas=server_cert is None,
                                                 pinned=server_cert, pin_name="server_cert",
                                                 client=cert),
                               pinned=server_cert is not None)
        tls.context()  # material the TLS library refuses fails here, not at the first request
    except BaseException:
        finalizer()
        raise
    session.mount("https://", tls)
    base = f"https://{parts.netloc}{parts.path.rstrip('/')}"
    return Transport(session, base, url, pinned=server_cert is not None, live=tls.live,
                     _secrets=secrets, _finalizer=finalizer)
