"""Credentials in URLs (``https://user:password@host/``): keep them out of every output.

A remote's URL may carry userinfo, typically from ``url: ${SS_URL}``.  The tool
itself uses it when it fetches from the remote; nothing else ever sees it.

Invariants:

* :func:`without_userinfo` is the URL the daemon is handed and a plan records:
  the same URL with the userinfo dropped (it is what ``source.server`` and the
  image's update source hold, so ownership matching compares like with like).
* :func:`redact_url` is how a URL is shown to people: userinfo, if any, becomes
  ``***`` (``https://***@host/path``) so the reader sees that credentials were
  given without seeing them.
* :func:`scrub` redacts every ``scheme://userinfo@`` inside free text; the CLI
  passes every error line through it, a last guard for messages worded from a
  library's exception text.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#'\"<>]+@")


def has_userinfo(url: str) -> bool:
    """Whether ``url`` names a user (and maybe a password) before its host."""
    try:
        return "@" in urlsplit(url).netloc
    except ValueError:
        return "@" in url


def _with_netloc(url: str, netloc: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def without_userinfo(url: str) -> str:
    """``url`` with any ``user:password@`` removed (the rest byte for byte)."""
    if not has_userinfo(url):
        return url
    try:
        return _with_netloc(url, urlsplit(url).netloc.rpartition("@")[2])
    except ValueError:
        return scrub(url)


def redact_url(url: str) -> str:
    """``url`` as shown to people: ``https://***@host/...`` when it carries userinfo."""
    if not has_userinfo(url):
        return url
    try:
        return _with_netloc(url, "***@" + urlsplit(url).netloc.rpartition("@")[2])
    except ValueError:
        return scrub(url)


def scrub(text: str) -> str:
    """``text`` with the userinfo of every URL in it replaced by ``***``."""
    return _USERINFO.sub(lambda m: m.group(1) + "***@", text)
