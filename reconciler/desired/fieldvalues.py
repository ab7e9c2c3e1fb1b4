"""Pure parsers and rules for single field values of the desired-state file.

Each ``*_problem`` function returns None when the value is fine, else a message
fragment (no path) that never quotes key material.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from reconciler.desired.shown import shown
from reconciler.desired.urlcheck import network_url_problem, split
from reconciler.model.desired import FINGERPRINT_PATTERN, SOURCE_PATTERN
from reconciler.model.times import parse_rfc3339
from reconciler.redact import redact_url

ALIAS_MAX = 64
ALIAS_FORBIDDEN = "$?&+\"'`*"
NUL_PROBLEM = "must not contain NUL (U+0000): Incus cuts text short there"
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
            moment = parse_rfc3339(value.strip())
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
    """Incus's rule for API names (``validate.IsAPIName``, slashes allowed), as one message,
    or None if the name is fine; and no control characters (see :func:`control_problem`).

    Incus 6.0 does not check alias names when it creates them: it stores whatever it
    is sent, cut short at a NUL.  Its own rule is the one it applies to its other
    names: at most 64 bytes (UTF-8), no white space, none of ``$?&+"'`*``, and an
    ASCII letter or digit first and last.
    """
    if not name:
        return "alias name is empty"
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > ALIAS_MAX:
        unit = "characters" if size == len(name) else "bytes in UTF-8"
        return f"alias {name!r} is longer than {ALIAS_MAX} {unit}"
    if any(ch.isspace() for ch in name):
        return f"alias {name!r} must not contain whitespace"
    if problem := control_problem(name):
        return f"alias {name!r} {problem}"
    bad = sorted({ch for ch in name if ch in ALIAS_FORBIDDEN})
    if bad:
        return f"alias {name!r} must not contain {' '.join(bad)}"
    for end in (name[0], name[-1]):
        if not end.isalnum():
            return f"alias {name!r} must start and end with a letter or digit"
        if not end.isascii():
            return (f"alias {name!r} must start and end with an ASCII letter or digit "
                    f"(A-Z, a-z, 0-9), not {end!r}")
    return None


def control_problem(text: str) -> str | None:
    """Why ``text`` cannot be a name that Incus keeps as written: a control character
    (NUL cuts it short in the daemon's database; the others have no place in a name)
    or a lone surrogate (see :func:`text_problem`).  None when there is none."""
    if problem := text_problem(text):
        return problem
    for ch in text:
        if unicodedata.category(ch) == "Cc":
            return f"must not contain the control character U+{ord(ch):04X}"
    return None


def text_problem(text: str) -> str | None:
    """Why Incus cannot keep free text (a property value, a description, a setting) as
    written: a NUL, where the daemon cuts it short, or a lone surrogate (a YAML escape
    such as ``\\ud800``), which has no UTF-8 form and reaches the daemon as U+FFFD.
    None when the text is fine."""
    if "\0" in text:
        return NUL_PROBLEM
    for ch in text:
        if unicodedata.category(ch) == "Cs":
            return f"must not contain U+{ord(ch):04X}, a lone surrogate that is no character"
    return None


def property_key_problem(key: str) -> str | None:
    """Image property keys: Incus takes any string, but an empty key is no property and
    a control character (NUL above all) does not survive as written."""
    if not key:
        return "property key is empty"
    if problem := control_problem(key):
        return f"property key {key!r} {problem}"
    return None


def property_value_problem(key: str, value: str) -> str | None:
    """Incus drops a property whose value is empty and cuts a value short at a NUL:
    either would read back different from the file at every plan."""
    if value == "":
        return (f"property {key!r} has an empty value, which Incus drops: "
                "remove the key instead")
    if problem := text_problem(value):
        return f"property {key!r} {problem}"
    return None


def profile_problem(name: str) -> str | None:
    """Incus's rule for profile names (no name, ``/``, ``.`` and ``..`` are refused),
    and no control characters (see :func:`control_problem`)."""
    if not name:
        return "profile name is empty"
    if "/" in name:
        return f"profile {name!r} must not contain /"
    if name in (".", ".."):
        return f"profile name {name!r} is not allowed"
    if problem := control_problem(name):
        return f"profile {name!r} {problem}"
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
        return f"must be an http:// or https:// URL, not {shown(redact_url(url))}"
    # A remote's URL may carry credentials (the tool uses them; outputs redact them).
    return network_url_problem(url, userinfo=True)


def target_url_problem(url: str) -> str | None:
    parts = split(url)
    if parts is not None and parts.scheme == "https" and parts.netloc:
        return network_url_problem(url)
    if (parts is not None and url.startswith("unix://") and not parts.netloc
            and parts.path[:1] in ("", "/")):
        return None
    return f"must be unix:///path/to/unix.socket or https://host:port, not {shown(redact_url(url))}"


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
