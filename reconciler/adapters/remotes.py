"""Reading remote image servers over HTTP(S): the real :class:`RemoteReader`.

:class:`HttpRemoteReader` fetches a remote's catalog once per reader (one CLI run)
and streams image files for the upload fallback.  Parsing is pure and lives in
:mod:`reconciler.remotes`; this module only moves bytes and translates failures.

Invariants:

* One fetch per remote per reader: ``streams/v1/index.json`` plus each products
  file it lists (simplestreams), or one ``GET /1.0/images?recursion=1`` (incus).
  The catalog, or the :class:`RemoteError` that fetching it raised, is cached by
  remote name.
* Every failure is a :class:`RemoteError` naming the remote and saying what failed
  (connect, TLS, HTTP status, JSON, shape); no ``requests`` exception escapes.
* TLS as the daemon does it: without ``certificate`` the system CAs and the URL's
  host name; with ``certificate`` (PEM of a CA or of the server itself) the system
  CAs plus that certificate as an extra trust root (even when it is not
  self-signed), and the host name checked against the certificate's first DNS name
  when it has one (else the URL's host), so a server reached by IP works as it
  does for the daemon.  The PEM lives in a private memory file (see
  :mod:`reconciler.adapters.private_files`) until :meth:`HttpRemoteReader.close`.
* Connection errors are retried by urllib3 (``Retry``); read errors and HTTP
  statuses are not.  Timeouts: 10 s to connect, 60 s between bytes.
* :meth:`HttpRemoteReader.open_file` yields the final chunk of a file only after
  the whole file has been checked against the size and sha256 of the index, so a
  consumer that streams the chunks onward never passes on a complete bad file.
"""

from __future__ import annotations

import errno
import hashlib
import json
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from reconciler.adapters.private_files import PrivateFiles
from reconciler.errors import RemoteError
from reconciler.model.config import RemoteSpec
from reconciler.model.remote import RemoteCatalog, RemoteFile
from reconciler.remotes import incus, simplestreams

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
CHUNK_SIZE = 1 << 20
USER_AGENT = "incus-images"


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
    ) -> None:
        self._host_arch = host_arch
        self._timeout = (connect_timeout, read_timeout)
        self._chunk_size = chunk_size
        self._retry = Retry(
            total=None, connect=retries, read=0, status=0, other=0, redirect=10,
            backoff_factor=0.2, allowed_methods=frozenset({"GET"}), raise_on_status=False,
        )
        self._session = requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT
        self._session.mount("http://", HTTPAdapter(max_retries=self._retry))
        self._session.mount("https://", HTTPAdapter(max_retries=self._retry))
        self._catalogs: dict[str, RemoteCatalog | RemoteError] = {}
        self._ca_files: dict[str, str] = {}
        self._files = PrivateFiles("incus-images-remotes-")

    def __enter__(self) -> HttpRemoteReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close connections and delete the certificate files.  Idempotent."""
        self._session.close()
        self._files.close()

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
        url = join_url(remote.url, file.path)
        response = self._get(remote, url, stream=True)
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
        response = self._get(remote, join_url(remote.url, path))
        try:
            return json.loads(response.content)
        except ValueError:
            raise RemoteError(remote.name, f"{path.split('?')[0]} is not valid JSON") from None

    def _get(self, remote: RemoteSpec, url: str, *, stream: bool = False) -> requests.Response:
        """GET with this remote's TLS settings; a non-200 answer is a RemoteError."""
        verify = self._verify(remote)
        try:
            response = self._session.get(url, timeout=self._timeout, verify=verify,
                                         stream=stream)
        except requests.RequestException as exc:
            _raise_transport(remote, url, exc, self._timeout)
        if response.status_code != 200:
            detail = _error_detail(response)
            response.close()
            raise RemoteError(remote.name, f"GET {url} answered HTTP {response.status_code} "
                              f"{response.reason}{detail}")
        return response

    def _verify(self, remote: RemoteSpec) -> bool | str:
        """True (system CAs) or the path of this remote's pinned certificate file."""
        if not remote.certificate:
            return True
        path = self._ca_files.get(remote.name)
        if path is None:
            try:
                server_name = _first_dns_name(remote.certificate)
            except ValueError as exc:
                raise RemoteError(remote.name, f"certificate: {exc}") from None
            path = self._files.add(f"remote-{len(self._ca_files)}.pem", remote.certificate)
            self._ca_files[remote.name] = path
            self._session.mount(join_url(remote.url, ""),
                                _PinnedAdapter(server_name, max_retries=self._retry))
        return path

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
            raise RemoteError(remote.name, f"{url}: download interrupted: "
                              f"{_reason(exc)}") from exc
        if received != file.size:
            raise RemoteError(remote.name, f"{file.path}: got {received} of the {file.size} "
                              "bytes the index announces")
        if not verified:
            check()


class _PinnedAdapter(HTTPAdapter):
    """HTTPS to one remote with a pinned certificate, verified the way the daemon does.

    Trust roots: the system CAs plus the pinned file (loaded per request from
    ``verify``); ``VERIFY_X509_PARTIAL_CHAIN`` lets a pinned certificate that is
    not self-signed anchor the chain.  ``server_name`` replaces the URL host in
    the host name check when set.
    """

    def __init__(self, server_name: str | None, **kwargs: Any) -> None:
        self._server_name = server_name
        super().__init__(**kwargs)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False,
                         **pool_kwargs: Any) -> None:
        context = ssl.create_default_context()
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        pool_kwargs["ssl_context"] = context
        if self._server_name:
            pool_kwargs["assert_hostname"] = self._server_name
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)


def _raise_transport(
    remote: RemoteSpec, url: str, exc: requests.RequestException, timeout: tuple[float, float]
) -> NoReturn:
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}"
    if isinstance(exc, requests.exceptions.SSLError):
        reason = _reason(exc)
        if "CERTIFICATE_VERIFY_FAILED" in str(exc) or isinstance(
            _find(exc, ssl.SSLCertVerificationError), ssl.SSLCertVerificationError
        ):
            hint = ("the `certificate:` given does not match the server" if remote.certificate
                    else "set `certificate:` for a private CA")
            message = f"TLS certificate verification failed for {base}: {reason} ({hint})"
        else:
            message = f"TLS handshake with {base} failed: {reason}"
    elif isinstance(exc, requests.exceptions.ConnectTimeout):
        message = f"cannot connect to {base}: timed out after {timeout[0]:g} s"
    elif isinstance(exc, requests.exceptions.ReadTimeout):
        message = f"GET {url}: no answer within {timeout[1]:g} s"
    elif isinstance(exc, requests.exceptions.ConnectionError):
        message = f"cannot connect to {base}: {_reason(exc)}"
    else:
        message = f"GET {url} failed: {_reason(exc)}"
    raise RemoteError(remote.name, message) from exc


def _chain(exc: BaseException) -> Iterator[BaseException]:
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


def _find(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    return next((e for e in _chain(exc) if isinstance(e, kind)), None)


def _reason(exc: BaseException) -> str:
    """A short human reason: "connection refused", "certificate has expired", ..."""
    for inner in _chain(exc):
        if isinstance(inner, ssl.SSLCertVerificationError) and inner.verify_message:
            return str(inner.verify_message)
    for inner in _chain(exc):
        if isinstance(inner, ssl.SSLError) and inner.reason:
            return str(inner.reason).lower().replace("_", " ")
    for inner in _chain(exc):
        if isinstance(inner, OSError) and inner.errno is not None and inner.strerror:
            if inner.errno == errno.ECONNREFUSED:
                return "connection refused"
            return inner.strerror[:1].lower() + inner.strerror[1:]
    last = list(_chain(exc))[-1]
    return str(last) or type(last).__name__


def _error_detail(response: requests.Response) -> str:
    """``: <error>`` from an Incus error envelope, or nothing."""
    try:
        body = json.loads(response.content[:65536])
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
