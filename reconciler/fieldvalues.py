"""Pure parsers and rules for single field values of the desired-state file.

Each ``*_problem`` function returns None when the value is fine, else a message
fragment (no path) that never quotes key material.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from reconciler.model.desired import FINGERPRINT_PATTERN, SOURCE_PATTERN
from reconciler.shown import shown
from reconciler.urlcheck import network_url_problem, split

ALIAS_MAX = 64
ALIAS_FORBIDDEN = "$?&+\"'`*"
DEFAULT_SOCKET = "/var/lib/incus/unix.socket"

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?$"
)
_DAYS = re.compile(r"^([1-9][0-9]{0,17})d$")
_ANY_DAYS = re.compile(r"^([1-9][0-9]*)d$")
MAX_DAYS = 36500
"""Longest ``expires_after`` / ``delete_unused_after`` accepted: 100 years."""
_HEX64_ANY_CASE = re.compile(r"^[0-9a-fA-F]{64}$")


def parse_expiry(value: Any) -> datetime | None:
    """An aware UTC datetime from a YAML date/time or its text; None if it is neither.

    A date means 00:00 UTC that day.  A time without a timezone is taken as UTC.
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and _DATE.match(value.strip()):
        try:
            day = date.fromisoformat(value.strip())
        except ValueError:
            return None
        moment = datetime(day.year, day.month, day.day)
    elif isinstance(value, str) and _RFC3339.match(value.strip()):
        try:
            moment = datetime.fromisoformat(value.strip().replace("z", "Z"))
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        return None
    return datetime(
        moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second,
        moment.microsecond, tzinfo=UTC,
    )


def parse_days(value: str) -> int | None:
    """``"30d"`` -> 30; None for anything else (including more than 18 digits)."""
    match = _DAYS.match(value)
    return int(match.group(1)) if match else None


def days_problem(value: str) -> str | None:
    """Why a well-formed ``Nd`` duration is too long, or None (a malformed one: None too)."""
    match = _ANY_DAYS.match(value)
    if match and (len(match.group(1)) > 6 or int(match.group(1)) > MAX_DAYS):
        return f"must be at most {MAX_DAYS}d (100 years), not {shown(value)}"
    return None


def alias_problem(name: str) -> str | None:
    """The daemon's rule for alias names, as one message, or None if the name is fine."""
    if not name:
        return "alias name is empty"
    if len(name) > ALIAS_MAX:
        return f"alias {name!r} is longer than {ALIAS_MAX} characters"
    if any(ch.isspace() for ch in name):
        return f"alias {name!r} must not contain whitespace"
    bad = sorted({ch for ch in name if ch in ALIAS_FORBIDDEN})
    if bad:
        return f"alias {name!r} must not contain {' '.join(bad)}"
    if not (name[0].isalnum() and name[-1].isalnum()):
        return f"alias {name!r} must start and end with a letter or digit"
    return None


def source_problem(source: str) -> str | None:
    if re.match(SOURCE_PATTERN, source):
        return None
    return f"must be <remote>:<alias>, such as images:debian/12, not {shown(source)}"


def fingerprint_problem(fingerprint: str) -> str | None:
    if re.match(FINGERPRINT_PATTERN, fingerprint):
        return None
    if _HEX64_ANY_CASE.match(fingerprint):
        return "must be written in lowercase hex"
    return (
        f"must be all 64 hex digits of the image's fingerprint, not {shown(fingerprint)} "
        f"({len(fingerprint)} characters)"
    )


def remote_url_problem(url: str) -> str | None:
    parts = split(url)
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        return f"must be an http:// or https:// URL, not {shown(url)}"
    return network_url_problem(url)


def target_url_problem(url: str) -> str | None:
    parts = split(url)
    if parts is not None and parts.scheme == "https" and parts.netloc:
        return network_url_problem(url)
    if (parts is not None and url.startswith("unix://") and not parts.netloc
            and parts.path[:1] in ("", "/")):
        return None
    return f"must be unix:///path/to/unix.socket or https://host:port, not {shown(url)}"


def local_socket_url(environ: Mapping[str, str]) -> str:
    """The local daemon's socket as the incus client finds it, as ``unix://<path>``."""
    socket = environ.get("INCUS_SOCKET")
    if not socket:
        incus_dir = environ.get("INCUS_DIR")
        socket = f"{incus_dir.rstrip('/')}/unix.socket" if incus_dir else DEFAULT_SOCKET
    return f"unix://{socket}"


def target_url(url: str | None, environ: Mapping[str, str]) -> str:
    """A declared target URL; none (or a bare ``unix://``) means the local socket."""
    if url is None or url == "unix://":
        return local_socket_url(environ)
    return url


def server_value(value: str | int | bool) -> str:
    """A ``server`` setting as the daemon stores it: ``True`` -> ``"true"``, ``6`` -> ``"6"``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


PROJECT_FORBIDDEN = "/_'\"*"


def project_problem(name: str) -> str | None:
    """The daemon's rule for project names (``project.ValidName``), or None if fine."""
    if not name:
        return "must not be empty"
    if name in (".", ".."):
        return f"must not be {name!r}"
    if any(ch.isspace() or not ch.isprintable() for ch in name):
        return f"must not contain whitespace or control characters: {shown(name)}"
    bad = sorted({ch for ch in name if ch in PROJECT_FORBIDDEN})
    if bad:
        return f"must not contain {' '.join(bad)}: {shown(name)}"
    return None
