"""Short forms of long hex identifiers: image fingerprints, commits, sha256 digests.

One length everywhere (12 hex digits, as ``incus image list`` shows a
fingerprint); the only difference between callers is what an absent
fingerprint reads as, and that is an explicit argument.
"""

from __future__ import annotations

SHORT_FINGERPRINT = 12
"""Hex digits shown for a fingerprint, as ``incus image list`` does."""


def short_fingerprint(fingerprint: str | None, missing: str = "?") -> str:
    """The first 12 hex digits of a fingerprint; ``missing`` when it is None or empty."""
    return fingerprint[:SHORT_FINGERPRINT] if fingerprint else missing


def short_hex(digest: str) -> str:
    """The first 12 characters of a commit id or a sha256 digest (same length as a fingerprint)."""
    return digest[:SHORT_FINGERPRINT]
