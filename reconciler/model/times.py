"""RFC 3339 times: the one parser and the one formatter family of the tool.

Invariants of every formatter here:

* the result is in UTC and ends in ``Z`` (never ``+00:00``);
* an aware datetime is converted to UTC; a naive one is taken as UTC already;
* the formatters differ only in precision, each named for it:
  :func:`rfc3339` (seconds, plus microseconds only when non-zero),
  :func:`rfc3339_seconds` (fractions dropped; for people and for comparing),
  :func:`rfc3339_milliseconds` (always three digits; stored leases).

:func:`parse_rfc3339` is the one parser: ``Z``/``z`` or a numeric offset, or no
zone at all (taken as UTC); it returns an aware datetime with the offset it was
given (callers that want UTC convert), and raises ``ValueError`` on anything else.

What a particular peer's special values mean (Incus's ``0001-01-01`` and
``1970-01-01``) is that peer's adapter's business, not this module's.
"""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive datetime is taken as UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _zulu(text: str) -> str:
    return text.replace("+00:00", "Z")


def rfc3339(value: datetime) -> str:
    """``2027-06-30T12:00:00Z``; microseconds (6 digits) only when non-zero."""
    return _zulu(as_utc(value).isoformat())


def rfc3339_seconds(value: datetime | None) -> str | None:
    """``2027-06-30T12:00:00Z`` with any fraction of a second dropped; None stays None."""
    if value is None:
        return None
    return _zulu(as_utc(value).replace(microsecond=0).isoformat())


def rfc3339_milliseconds(value: datetime) -> str:
    """``2027-06-30T12:00:00.250Z``: always exactly three fraction digits (truncated)."""
    return _zulu(as_utc(value).isoformat(timespec="milliseconds"))


def same_second(a: datetime | None, b: datetime | None) -> bool:
    """Whether two times name the same UTC second (None equals only None)."""
    return rfc3339_seconds(a) == rfc3339_seconds(b)


def minutes_as_given(value: datetime) -> str:
    """``2027-06-30 12:00``: date and time to the minute, in the zone the value carries.

    For tables read by people; no zone is written and none is converted.
    """
    return value.strftime("%Y-%m-%d %H:%M")


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 time as an aware datetime, keeping its offset.

    Accepts ``Z``, ``z`` or a numeric offset; a time without a zone is taken as
    UTC.  Fractions beyond microseconds are truncated (Go writes nanoseconds).
    Raises ``ValueError`` when ``text`` is not such a time.
    """
    if text.endswith("z"):
        text = text[:-1] + "Z"
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
