"""Reading remote image servers over HTTP(S): the real :class:`~reconciler.ports.RemoteReader`.

:class:`HttpRemoteReader` fetches a remote's catalog once per reader (one CLI run)
and streams image files for the upload fallback.  Parsing is pure and lives in
:mod:`reconciler.adapters.remotes.simplestreams` and :mod:`reconciler.adapters.remotes.incus`;
this module only moves bytes and translates failures (in the words of
:mod:`reconciler.adapters.http`).

Invariants:

* One fetch per remote per reader: ``streams/v1/index.json`` plus each products
  file it lists (simplestreams), or one ``GET /1.0/images?recursion=1`` (incus).
  The catalog, or the :class:`RemoteError` that fetching it raised, is cached by
  remote name.
* Every failure is a :class:`RemoteError` naming the remote and saying what failed
  (connect, TLS, HTTP status, JSON, shape); no ``requests`` exception escapes.  A
  URL in a message never shows its ``user:password@`` (it is sent, as HTTP basic
  authentication, only to the remote itself).
* TLS as the daemon does it (:mod:`reconciler.adapters.tls`): without ``certificate``
  the system's CAs (``SSL_CERT_FILE``, ``SSL_CERT_DIR``, else the distribution's; not
  certifi's bundle, nor ``REQUESTS_CA_BUNDLE``) and the URL's host name; with
  ``certificate`` (PEM of a CA or of the server itself) the system's CAs plus that
  certificate as an extra trust root (even when it is not self-signed), and the host
  name checked against the certificate's first DNS name when it has one (else the
  URL's host), so a server reached by IP works as it does for the daemon.  The PEM
  stays in memory.
* Connection errors are retried by urllib3 (``Retry``); connect timeouts, read
  errors and HTTP statuses are not.  Every request has an explicit (connect, read)
  timeout (``--connect-timeout``, ``--read-timeout``: 10 s and 30 s by default), and a
  timeout is reported as such ("timed out after N s ... (--read-timeout)"), never as
  "cannot connect" when the connection was made.
* Redirects are followed (at most :data:`MAX_REDIRECTS`), except one from ``https://``
  to plain ``http://``: that is refused, naming both URLs.
* An index document (``index.json``, a products file, an Incus image list) is read
  in small pieces and never held beyond :data:`MAX_INDEX_BYTES` (decoded), and must
  arrive within :data:`INDEX_DEADLINE` seconds in all, so a huge, endless or
  trickling answer fails with a message naming the limit instead of filling memory
  or hanging.
* :meth:`HttpRemoteReader.open_file` yields the final chunk of a file only after
  the whole file has been checked against the size and sha256 of the index, so a
  consumer that streams the chunks onward never passes on a complete bad file.
"""

from __future__ import annotations

import functools
import hashlib
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import NoReturn, Self
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from reconciler import jsontext
from reconciler.adapters.http import (
    DROPPED,
    AnswerRefused,
    connect_timed_out,
    failure_kind,
    failure_reason,
    find_in_chain,
    read_body,
    timeout_kind,
)
from reconciler.adapters.remotes import incus, simplestreams
from reconciler.adapters.tls import OwnTLSAdapter, tls_context
from reconciler.errors import RemoteError
from reconciler.model.config import RemoteSpec
from reconciler.model.remote import RemoteCatalog, RemoteFile
from reconciler.redact import redact_url
from reconciler.timeouts import (
    DEFAULT_CONNECT,
    DEFAULT_READ,
    INDEX_DEADLINE,
    READ_OPTION,
    seconds,
)

CONNECT_TIMEOUT = DEFAULT_CONNECT
READ_TIMEOUT = DEFAULT_READ
CHUNK_SIZE = 1 << 20
USER_AGENT = "incus-images"
MAX_INDEX_BYTES = 64 << 20
"""The most an index document may hold: the public server's products file is ~20 MB."""
MAX_REDIRECTS = 10


class _Retry(Retry):
    """``Retry`` that gives up at once on a connect timeout: ``--connect-timeout`` is
    the whole wait, not one of several (refused or reset connections are retried)."""

    def increment(
        self, method: str | None = None, url: str | None = None,
        response: BaseHTTPResponse | None = None, error: Exception | None = None,
        _pool: ConnectionPool | None = None, _stacktrace: TracebackType | None = None,
    ) -> Self:
        if _pool is not None and isinstance(error, ConnectTimeoutError) \
                and not isinstance(error, NewConnectionError):
            raise MaxRetryError(_pool, url or "", error) from error
        return super().increment(method, url, response, error, _pool, _stacktrace)


def join_url(base: str, path: str) -> str:
    """``path`` (relative, as an index gives it) under the remote's base URL."""
    return f"{base.rstrip('/')}/{path.lstrip('/')}"


class HttpRemoteReader:
    """The :class:`reconciler.ports.RemoteReader` that talks HTTP(S) with ``requests``.

    ``host_arch`` (canonical or simplestreams name) only decides which short alias
    names a simplestreams image lists, as the daemon does; resolution does not
    depend on it.  ``retries`` is the number of connection retries.  Not
    thread-safe.  Use as a context manager or call :meth:`close`.
    """

    def __init__(
        self,
        *,
        host_arch: str | None = None,
        retries: int = 2,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        chunk_size: int = CHUNK_SIZE,
        max_index_bytes: int = MAX_INDEX_BYTES,
        index_deadline: float = INDEX_DEADLINE,
    ) -> None:
        self._host_arch = host_arch
        self._timeout = (connect_timeout, read_timeout)
        self._chunk_size = chunk_size
        self._max_index_bytes = max_index_bytes
        self._index_deadline = index_deadline
        self._retry = _Retry(
            total=None, connect=retries, read=False, status=0, other=0, redirect=10,
            backoff_factor=0.2, allowed_methods=frozenset({"GET"}), raise_on_status=False,
        )
        self._session = self._new_session(OwnTLSAdapter(
            functools.partial(tls_context, system_cas=True), max_retries=self._retry))
        self._catalogs: dict[str, RemoteCatalog | RemoteError] = {}
        self._pinned: dict[str, requests.Session] = {}
        """A session per remote with a ``certificate``: its trust applies to every URL
        of that remote's requests, redirects to other hosts and ports included."""

    def __enter__(self) -> HttpRemoteReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections.  Idempotent."""
        self._session.close()
        for session in self._pinned.values():
            session.close()

    # --- RemoteReader ---------------------------------------------------------------

    def fetch_catalog(self, remote: RemoteSpec) -> RemoteCatalog:
        """Every build ``remote`` serves; fetched on the first call, cached after."""
        cached = self._catalogs.get(remote.name)
        if isinstance(cached, RemoteError):
            raise cached
        if cached is not None:
            return cached
        try:
            catalog = (self._fetch_incus(remote) if remote.protocol == "incus"
                       else self._fetch_simplestreams(remote))
        except RemoteError as exc:
            self._catalogs[remote.name] = exc
            raise
        self._catalogs[remote.name] = catalog
        return catalog

    @contextmanager
    def open_file(self, remote: RemoteSpec, file: RemoteFile) -> Iterator[Iterator[bytes]]:
        """Stream ``<url>/<file.path>`` in chunks, checked against ``file``.

        The iterator raises :class:`RemoteError` on a size or sha256 mismatch or an
        interrupted transfer, before it yields the last chunk where it can.
        """
        if remote.protocol == "incus":
            raise RemoteError(remote.name, "upload fallback not supported for incus remotes")
        response = self._get(remote, join_url(remote.url, file.path))
        url = response.url
        try:
            yield self._checked(remote, file, url, response)
        finally:
            response.close()

    # --- fetching ---------------------------------------------------------------------

    def _fetch_simplestreams(self, remote: RemoteSpec) -> RemoteCatalog:
        index = self._get_json(remote, simplestreams.INDEX_PATH)
        paths = simplestreams.parse_index(index, remote=remote.name)
        docs = [self._get_json(remote, path) for path in paths]
        return simplestreams.build_catalog(remote, docs, self._host_arch, paths=paths)

    def _fetch_incus(self, remote: RemoteSpec) -> RemoteCatalog:
        body = self._get_json(remote, incus.LISTING_PATH)
        if not isinstance(body, dict) or not isinstance(body.get("metadata"), list):
            raise RemoteError(remote.name, f"{incus.LISTING_PATH}: not an Incus image list "
                              "(is this an Incus server?)")
        return incus.build_catalog(remote, body["metadata"])

    def _get_json(self, remote: RemoteSpec, path: str) -> object:
        started = time.monotonic()
        response = self._get(remote, join_url(remote.url, path))
        try:
            body = self._read_index(remote, response, started)
        finally:
            response.close()
        try:
            return jsontext.loads(body)
        except jsontext.TooDeep as exc:
            raise RemoteError(remote.name, f"{path.split('?')[0]} is not valid JSON: {exc}"
                              ) from None
        except ValueError:
            raise RemoteError(remote.name, f"{path.split('?')[0]} is not valid JSON") from None

    def _read_index(self, remote: RemoteSpec, response: requests.Response,
                    started: float) -> bytearray:
        """The whole (decoded) body of an index document, within the size cap and the
        deadline counted from ``started`` (:func:`~reconciler.adapters.http.read_body`)."""
        url, cap = response.url, self._max_index_bytes
        try:
            return read_body(response, limit=cap, deadline=self._index_deadline,
                             started=started)  # not copied: json reads a bytearray as bytes
        except AnswerRefused as refused:
            if refused.too_slow:
                raise RemoteError(remote.name, f"gave up reading {url} after "
                                  f"{seconds(self._index_deadline)} (the most one index "
                                  "file may take; the server sends too slowly)") from None
            why = ("it sends more" if refused.announced is None
                   else f"it announces {refused.announced} bytes")
            raise RemoteError(remote.name, _too_big(url, cap, why)) from None
        except requests.RequestException as exc:
            _raise_transport(remote, url, exc, self._timeout, reading=True)

    def _get(self, remote: RemoteSpec, url: str) -> requests.Response:
        """GET (streamed) with this remote's TLS settings, following safe redirects.

        A non-200 answer is a RemoteError, and so is a redirect from https to http.
        The caller closes the response; ``response.url`` is where it came from.
        """
        session = self._session_for(remote)
        first = url
        for _ in range(MAX_REDIRECTS + 1):
            try:
                response = session.get(url, timeout=self._timeout, stream=True,
                                       allow_redirects=False)
            except requests.RequestException as exc:
                _raise_transport(remote, url, exc, self._timeout)
            if not response.is_redirect:
                break
            location = urljoin(url, session.get_redirect_target(response) or "")
            response.close()
            if urlsplit(url).scheme == "https" and urlsplit(location).scheme != "https":
                raise RemoteError(remote.name, f"GET {url} redirects to {location}: refusing "
                                  "to follow a redirect from HTTPS to plain HTTP")
            url = location
        else:
            raise RemoteError(remote.name, f"GET {first}: more than {MAX_REDIRECTS} redirects")
        if response.status_code != 200:
            detail = _error_detail(response)
            response.close()
            raise RemoteError(remote.name, f"GET {redact_url(url)} answered HTTP "
                              f"{response.status_code} "
                              f"{response.reason}{detail}")
        return response

    def _new_session(self, https: OwnTLSAdapter) -> requests.Session:
        session = requests.Session()
        session.headers["User-Agent"] = USER_AGENT
        session.mount("http://", HTTPAdapter(max_retries=self._retry))
        session.mount("https://", https)
        return session

    def _session_for(self, remote: RemoteSpec) -> requests.Session:
        """The shared session, or (with a ``certificate``) the remote's own: the system
        CAs plus that certificate, the host checked against its first DNS name."""
        if not remote.certificate:
            return self._session
        session = self._pinned.get(remote.name)
        if session is None:
            try:
                server_name = _first_dns_name(remote.certificate)
            except ValueError as exc:
                raise RemoteError(remote.name, f"certificate: {exc}") from None
            adapter = OwnTLSAdapter(functools.partial(tls_context, system_cas=True,
                                                      pinned=remote.certificate),
                                    host=server_name, max_retries=self._retry)
            try:
                adapter.context()
            except ValueError as exc:  # worded "certificate: ..." (the pin's name)
                raise RemoteError(remote.name, str(exc)) from None
            session = self._pinned[remote.name] = self._new_session(adapter)
        return session

    def _checked(
        self, remote: RemoteSpec, file: RemoteFile, url: str, response: requests.Response
    ) -> Iterator[bytes]:
        digest = hashlib.sha256()
        received = 0
        verified = False

        def check() -> None:
            got = digest.hexdigest()
            if got != file.sha256:
                raise RemoteError(remote.name, f"{file.path}: sha256 {got} does not match the "
                                  f"index ({file.sha256}); the server's file is corrupt or "
                                  "was replaced")

        try:
            for chunk in response.iter_content(self._chunk_size):
                if not chunk:
                    continue
                received += len(chunk)
                if received > file.size:
                    raise RemoteError(remote.name, f"{file.path}: more than the {file.size} "
                                      "bytes the index announces")
                digest.update(chunk)
                if received == file.size:
                    check()
                    verified = True
                yield chunk
        except requests.RequestException as exc:
            if timeout_kind(exc) is not None:
                _raise_transport(remote, url, exc, self._timeout, reading=True)
            raise RemoteError(remote.name, f"{redact_url(url)}: download interrupted: "
                              f"{failure_reason(exc)}") from exc
        if received != file.size:
            raise RemoteError(remote.name, f"{file.path}: got {received} of the {file.size} "
                              "bytes the index announces")
        if not verified:
            check()


def _too_big(url: str, cap: int, why: str) -> str:
    limit = f"{cap >> 20} MiB" if cap % (1 << 20) == 0 else f"{cap} bytes"
    return (f"{url} is larger than {limit}, the most an index file may hold "
            f"({why}); refusing to read it")


def _raise_transport(
    remote: RemoteSpec, url: str, exc: BaseException, timeout: tuple[float, float],
    *, reading: bool = False,
) -> NoReturn:
    """Raise the RemoteError for a failed request (or, with ``reading``, a failed body)."""
    url = redact_url(url)
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}"
    kind = failure_kind(exc)
    if kind == "connect_timeout" or kind == "handshake_timeout":
        message = connect_timed_out(kind, base, timeout[0])
    elif kind == "read_timeout":
        message = f"timed out after {seconds(timeout[1])} reading {url} ({READ_OPTION})"
    elif kind == "dropped":
        message = f"GET {url}: {DROPPED}"
    elif reading:
        message = f"reading {url} failed: {failure_reason(exc)}"
    elif kind == "tls":
        reason = failure_reason(exc)
        if "CERTIFICATE_VERIFY_FAILED" in str(exc) or isinstance(
            find_in_chain(exc, ssl.SSLCertVerificationError), ssl.SSLCertVerificationError
        ):
            hint = ("the `certificate:` given does not match the server" if remote.certificate
                    else "set `certificate:` for a private CA, or add it to the system's CAs")
            message = f"TLS certificate verification failed for {base}: {reason} ({hint})"
        else:
            message = f"TLS handshake with {base} failed: {reason}"
    elif kind == "connect":
        message = f"cannot connect to {base}: {failure_reason(exc)}"
    else:
        message = f"GET {url} failed: {failure_reason(exc)}"
    raise RemoteError(remote.name, message) from exc


def _error_detail(response: requests.Response) -> str:
    """``: <error>`` from an Incus error envelope, or nothing."""
    try:
        body = jsontext.loads(response.content[:65536])
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    return f": {error}" if isinstance(error, str) and error else ""


def _first_dns_name(pem: str) -> str | None:
    """The first DNS name in the subjectAltName of the first certificate in ``pem``.

    That is the name the Incus client verifies a pinned certificate against.
    Raises ValueError if ``pem`` holds no parsable certificate.
    """
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    start = pem.find(begin)
    stop = pem.find(end, start)
    if start < 0 or stop < 0:
        raise ValueError("no PEM certificate found")
    try:
        der = ssl.PEM_cert_to_DER_cert(pem[start:stop + len(end)])
        cert = _der_children(der, 0, len(der))[0]
        tbs = _der_children(der, *cert[1:])[0]
        for tag, first, last in _der_children(der, *tbs[1:]):
            if tag != 0xA3:  # [3] extensions
                continue
            for _, efirst, elast in _der_children(der, *_der_children(der, first, last)[0][1:]):
                ext = _der_children(der, efirst, elast)
                if der[ext[0][1]:ext[0][2]] != b"\x55\x1d\x11":  # 2.5.29.17 subjectAltName
                    continue
                octets = ext[-1]
                names = _der_children(der, *_der_children(der, *octets[1:])[0][1:])
                for ntag, nfirst, nlast in names:
                    if ntag == 0x82:  # dNSName
                        return der[nfirst:nlast].decode("ascii")
                return None
        return None
    except (IndexError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"not a valid certificate ({exc})") from None


def _der_children(der: bytes, first: int, last: int) -> list[tuple[int, int, int]]:
    """The (tag, content start, content end) of each DER element in ``der[first:last]``."""
    children: list[tuple[int, int, int]] = []
    pos = first
    while pos < last:
        tag = der[pos]
        length = der[pos + 1]
        pos += 2
        if length & 0x80:
            count = length & 0x7F
            if count == 0 or count > 4:
                raise ValueError("bad DER length")
            length = int.from_bytes(der[pos:pos + count], "big")
            pos += count
        if pos + length > last:
            raise ValueError("truncated DER")
        children.append((tag, pos, pos + length))
        pos += length
    return children
