"""The daemon settings a desired-state file may manage under ``server:``, and their values.

Only the ``images.*`` keys Incus 6.0 knows are accepted (a key it does not
know would be refused by the daemon at apply time), and the cluster-only
``cluster.images_minimal_replica`` (:data:`~reconciler.model.config.CLUSTER_SERVER_KEYS`:
``validate`` has no network and accepts it; ``plan`` refuses it for a standalone
daemon); each value is checked as the daemon will check it, so that a bad value
fails ``validate``, not ``apply``.  Every ``*_problem`` function returns None or
a message fragment.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from reconciler.desired.shown import shown
from reconciler.desired.suggest import did_you_mean
from reconciler.model import arch
from reconciler.model.config import CLUSTER_SERVER_KEYS

ServerValue = object
_WHOLE = re.compile(r"^-?[0-9]{1,18}$")
COMPRESSION_ALGORITHMS = ("bzip2", "gzip", "lz4", "lzma", "xz", "zstd", "pigz", "pxz", "pzstd",
                          "squashfs", "none")
_COMPRESSION_ARG = re.compile(r"^(?:-[1-9]|--rsyncable)$")


def _whole(value: ServerValue) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | str):
        return f"must be a whole number, not {shown(value)}"
    if isinstance(value, str) and not _WHOLE.match(value):
        return f"must be a whole number, not {shown(value)}"
    if isinstance(value, int) and abs(value) >= 10**18:
        return f"must be a whole number below 10^18, not {shown(value)}"
    return None


def _replica(value: ServerValue) -> str | None:
    """Incus 6.0 (``imageMinimalReplicaValidator``): -1 (every member) or at least 1."""
    if (problem := _whole(value)) is not None:
        return problem
    count = int(str(value))
    if count < 1 and count != -1:
        return f"must be -1 (every member) or a number of members from 1 up, not {shown(value)}"
    return None


def _boolean(value: ServerValue) -> str | None:
    if isinstance(value, bool) or value in ("true", "false"):
        return None
    return f"must be true or false, not {shown(value)}"


def _compression(value: ServerValue) -> str | None:
    words = value.split() if isinstance(value, str) else []
    if words and words[0] in COMPRESSION_ALGORITHMS and all(
            _COMPRESSION_ARG.match(w) for w in words[1:]):
        return None
    return (f"must be one of {', '.join(COMPRESSION_ALGORITHMS)} (with -1 to -9 or "
            f"--rsyncable), not {shown(value)}")


def _architecture(value: ServerValue) -> str | None:
    if isinstance(value, str) and arch.canonical(value) is not None:
        return None
    return f"must be an architecture name such as x86_64 or aarch64, not {shown(value)}"


SERVER_KEYS: dict[str, Callable[[ServerValue], str | None]] = {
    "images.auto_update_cached": _boolean,
    "images.auto_update_interval": _whole,
    "images.compression_algorithm": _compression,
    "images.default_architecture": _architecture,
    "images.remote_cache_expiry": _whole,
    "cluster.images_minimal_replica": _replica,
}
"""Key -> its value check (Incus 6.0: the server-level ``images.*`` keys, and the
cluster-only image key)."""


def server_key_problem(key: str) -> str | None:
    """Why ``key`` cannot be managed, or None."""
    if key in SERVER_KEYS:
        return None
    hint = did_you_mean(key, SERVER_KEYS)
    if not key.startswith("images.") or key == "images.":
        return (f"server key {shown(key)} is not allowed: only images.* settings and "
                f"{', '.join(CLUSTER_SERVER_KEYS)} can be managed{hint}")
    known = hint or f" (known: {', '.join(sorted(SERVER_KEYS))})"
    return f"server key {shown(key)} is not an Incus setting{known}"


def server_value_problem(key: str, value: ServerValue) -> str | None:
    """Why ``value`` is not acceptable for the known ``key``, or None."""
    check = SERVER_KEYS.get(key)
    return None if check is None else check(value)
