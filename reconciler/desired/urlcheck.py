"""The parts of an ``http(s)://`` URL that must be right before any request is sent.

:func:`network_url_problem` checks what ``urllib``/``requests`` would otherwise
reject (or crash on) at plan time: an unparsable URL (``https://[::1``), a port
that is not a number from 1 to 65535, no host, a host longer than 253
characters or with a label longer than 63, a host with characters no host name
or address has.  It never raises.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import SplitResult, urlsplit

from reconciler.desired.shown import shown
from reconciler.redact import redact_url

MAX_HOST = 253
MAX_LABEL = 63
_HOST_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?$")


def split(url: str) -> SplitResult | None:
    """``urlsplit(url)``, or None when Python cannot parse it."""
    try:
        return urlsplit(url)
    except ValueError:
        return None


def network_url_problem(url: str, *, userinfo: bool = False) -> str | None:
    """Why the scheme://host[:port] part of ``url`` cannot be used, or None.

    ``userinfo`` allows ``user:password@`` (a remote's credentials); a message never
    quotes it."""
    parts = split(url)
    if parts is None:
        return f"is not a valid URL: {shown(redact_url(url))}"
    try:
        port = parts.port
    except ValueError:
        return f"has an invalid port (a number from 1 to 65535): {shown(redact_url(url))}"
    if port == 0:
        return f"has an invalid port (a number from 1 to 65535): {shown(redact_url(url))}"
    if "@" in parts.netloc and not userinfo:
        return "must not contain a user name or password"
    host = parts.hostname
    if not host:
        return f"has no host: {shown(redact_url(url))}"
    return _host_problem(host, bracketed=parts.netloc.startswith("["))


def _host_problem(host: str, *, bracketed: bool) -> str | None:
    if bracketed:
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return f"has an invalid IPv6 address: {shown(host)}"
        return None
    if len(host) > MAX_HOST:
        return f"has a host name longer than {MAX_HOST} characters ({len(host)})"
    labels = host.rstrip(".").split(".")
    for label in labels:
        if not label.isascii():
            try:
                label = label.encode("idna").decode("ascii")
            except UnicodeError:
                return f"has an invalid host name: {shown(host)}"
        if len(label) > MAX_LABEL:
            return f"has a host name part longer than {MAX_LABEL} characters: {shown(label)}"
        if not _HOST_LABEL.match(label):
            return f"has an invalid host name: {shown(host)}"
    return None
