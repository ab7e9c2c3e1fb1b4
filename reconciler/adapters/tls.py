"""TLS for the HTTPS adapters: whom a connection trusts, decided here and nowhere else.

Invariants:

* "The system's CAs" are what OpenSSL finds: the bundle ``SSL_CERT_FILE`` names and the
  directory ``SSL_CERT_DIR`` names, else the distribution's (``/etc/ssl/certs`` on
  Debian).  That is what incusd and the incus client trust on Linux (Go's
  ``SystemCertPool`` reads the same two variables), so a private CA installed on the
  machine (``update-ca-certificates``) is trusted here as it is there.  ``certifi``'s
  bundle, which ``requests`` would use, is never read.
* A pinned certificate (PEM text) is a trust root of its own, even when it is not
  self-signed (``VERIFY_X509_PARTIAL_CHAIN``), as Incus makes it one; it never touches
  the filesystem.
* :class:`OwnTLSAdapter` ignores what ``requests`` passes each request (``verify``,
  which ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` may set, and ``cert``), through a
  proxy too: one context, made once, holds the trust roots and the client certificate,
  and nothing is loaded per connection.
* A certificate or key the TLS library refuses is a ``ValueError`` naming which one,
  raised when the context is made.
"""

from __future__ import annotations

import re
import ssl
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, cast

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.ssl_ import create_urllib3_context

if TYPE_CHECKING:
    from requests.adapters import _HostParams, _PoolKwargs


def tls_context(*, system_cas: bool, pinned: str | None = None, pin_name: str = "certificate",
                client: tuple[str, str] | None = None) -> ssl.SSLContext:
    """A client context that verifies the server: the system's CAs when ``system_cas``,
    plus the PEM ``pinned`` (the file's ``pin_name`` key) as a trust root; ``client`` is
    (certificate file, key file).

    Host names are checked by the context unless the adapter says otherwise.
    """
    context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
    if system_cas:
        context.load_default_certs()
    if pinned is not None:
        try:
            context.load_verify_locations(cadata=pinned)
        except (ssl.SSLError, ValueError) as exc:
            raise ValueError(f"{pin_name}: not a certificate the TLS library accepts "
                             f"({_reason(exc)})") from None
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    if client is not None:
        try:
            context.load_cert_chain(*client)
        except ssl.SSLError as exc:
            raise ValueError("client_cert, client_key: not a certificate and its key that "
                             f"the TLS library accepts ({_reason(exc)})") from None
    return context


def _reason(exc: Exception) -> str:
    """What the TLS library said, without its ``[LIB: CODE]`` prefix and ``(_ssl.c:N)``."""
    text = exc.args[-1] if isinstance(exc, ssl.SSLError) and exc.args else str(exc)
    text = _WHERE.sub("", _CODE.sub("", str(text))).strip()
    return text or type(exc).__name__


_CODE = re.compile(r"^\[[A-Z0-9_]+(?:: [A-Z0-9_]+)?\] ")
_WHERE = re.compile(r" \(_ssl\.c:\d+\)$")


HostCheck = str | Literal[False] | None
"""The name to check the server's certificate against: None for the URL's host, a name
for that name, False for none (a pinned daemon certificate: the pin is the check)."""


class OwnTLSAdapter(HTTPAdapter):
    """HTTPS whose TLS is the adapter's own: the context ``make_context`` returns (made on
    first use, once) and the host check ``host``; see the module's invariants."""

    def __init__(self, make_context: Callable[[], ssl.SSLContext], *,
                 host: HostCheck = None, **kwargs: Any) -> None:
        self._make_context = make_context
        self._context: ssl.SSLContext | None = None
        self._lock = threading.Lock()
        self._host = host
        super().__init__(**kwargs)

    def context(self) -> ssl.SSLContext:
        """The context, made now if it was not yet (``ValueError`` if refused)."""
        with self._lock:
            if self._context is None:
                self._context = self._make_context()
            return self._context

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: bool | str,
        cert: str | tuple[str, str] | None = None,
    ) -> tuple[_HostParams, _PoolKwargs]:
        """The pool for ``request``, directly or through a proxy: this adapter's context
        and host check, whatever ``verify`` and ``cert`` say."""
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, True)
        if host_params["scheme"] == "https":
            pool_kwargs["ssl_context"] = self.context()
            if self._host is not None:
                cast("dict[str, Any]", pool_kwargs)["assert_hostname"] = self._host
        return host_params, pool_kwargs

    def cert_verify(self, conn: Any, url: str, verify: bool | str, cert: Any) -> None:
        """Nothing per connection: the context already holds the roots and the client
        certificate (``requests`` would point the pool at certifi's bundle here)."""
        https = url.lower().startswith("https")
        conn.cert_reqs = "CERT_REQUIRED" if https else "CERT_NONE"
        conn.ca_certs = conn.ca_cert_dir = conn.cert_file = conn.key_file = None
