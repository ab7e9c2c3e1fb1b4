"""Which cluster members accept a TCP connection at their ``url``, checked at once.

A member killed seconds ago is still listed ``Online`` by the others until
``cluster.offline_threshold`` (20 s by default) has passed; a connection attempt
to its address tells at once.  Invariants:

* Only a TCP connection is opened (no TLS handshake, no request) and closed at once.
* Every address is tried concurrently, each bounded by ``timeout`` seconds, so the
  whole check takes about ``timeout`` at most, however many members there are.
* A url without a host and port (not ``https://HOST:PORT``) is left unchecked (None).
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

MAX_WORKERS = 16


def _host_port(url: str) -> tuple[str, int] | None:
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else None)
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return parts.hostname, port


def _accepts(address: tuple[str, int] | None, timeout: float) -> bool | None:
    if address is None:
        return None
    try:
        with socket.create_connection(address, timeout=timeout):
            return True
    except OSError:
        return False


def accepting(urls: Iterable[str], timeout: float) -> dict[str, bool | None]:
    """Each url: True (a connection was accepted), False (refused or timed out), or None
    (not an address that can be checked)."""
    wanted = sorted(set(urls))
    if not wanted:
        return {}
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(wanted))) as pool:
        found = pool.map(lambda u: _accepts(_host_port(u), timeout), wanted)
        return dict(zip(wanted, found, strict=True))
