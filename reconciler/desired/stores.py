"""Which declared targets reach one image store, as far as the file alone can tell.

Two targets with the same daemon URL (after normalising: scheme and host in
lowercase, the default port 8443 written out, a trailing ``/`` dropped; no URL
means the local socket) and the same project reach one store: each would prune
what only the other declares.  A target declared with ``urls:`` clashes with an
earlier one when any of its URLs does.  Stores that only the daemon can show to be one
(two URLs of one daemon, a project with ``features.images=false``) are checked
at plan time by :func:`reconciler.core.planner.check_distinct_stores`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from reconciler.desired.shown import shown
from reconciler.desired.urlcheck import split
from reconciler.desired.yamlsource import YPath

INCUS_PORT = 8443


def store_key(url: str) -> str:
    """A normalised daemon address: equal for two spellings of one URL."""
    parts = split(url)
    if parts is None:
        return url
    if parts.scheme.lower() == "unix":
        return f"unix://{parts.path.rstrip('/') or '/'}"
    try:
        port = parts.port or INCUS_PORT
    except ValueError:
        return url
    host = (parts.hostname or "").lower()
    return f"{parts.scheme.lower()}://{host}:{port}{parts.path.rstrip('/')}"


def _declared_urls(target: Mapping[str, Any]) -> list[str | None] | None:
    """The URLs a raw target declares (``urls``, else ``url``; None: the local socket),
    or None when they have the wrong shape (the shape check reports that)."""
    urls = target.get("urls")
    if urls is not None:
        return list(urls) if isinstance(urls, list) and all(
            isinstance(u, str) for u in urls) else None
    url = target.get("url")
    return [url] if url is None or isinstance(url, str) else None


def same_store_problems(targets: Mapping[str, Any], resolve: Callable[[str | None], str]
                        ) -> list[tuple[YPath, str]]:
    """One ``(key path, message)`` per target that reaches the store of an earlier one.

    ``targets`` is the raw ``targets`` mapping (any shape tolerated); ``resolve``
    turns a declared URL (or None) into the URL used (the local socket for none).
    """
    seen: dict[tuple[str, str], str] = {}
    out: list[tuple[YPath, str]] = []
    for name, target in targets.items():
        if not isinstance(target, dict):
            continue
        project = target.get("project", "default")
        urls = _declared_urls(target)
        if urls is None or not isinstance(project, str):
            continue
        keys = [(store_key(resolve(url)), project) for url in urls]
        first = next((seen[k] for k in keys if seen.get(k, name) != name), name)
        for key in keys:
            seen.setdefault(key, name)
        if first != name:
            out.append((("targets", name), (
                f"targets {shown(first)} and {shown(name)} reach one image store (the same "
                f"daemon and project {shown(project)}): each would prune what only the other "
                f"declares; keep one of them")))
    return out
