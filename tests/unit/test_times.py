"""The one RFC 3339 parser and formatter family (reconciler.model.times)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from reconciler.adapters.incus_decode import CLEAR_EXPIRY, format_time, parse_time
from reconciler.apply.lease import LeaseRecord
from reconciler.model.times import (
    as_utc,
    minutes_as_given,
    parse_rfc3339,
    rfc3339,
    rfc3339_milliseconds,
    rfc3339_seconds,
    same_second,
)
from reconciler.render.units import value

PLUS2 = timezone(timedelta(hours=2))
NOON = datetime(2027, 6, 30, 12, 0, 0, tzinfo=UTC)


def test_rfc3339_is_utc_with_z_and_microseconds_only_when_non_zero() -> None:
    assert rfc3339(NOON) == "2027-06-30T12:00:00Z"
    assert rfc3339(NOON.replace(microsecond=250)) == "2027-06-30T12:00:00.000250Z"
    assert rfc3339(datetime(2027, 6, 30, 14, 0, tzinfo=PLUS2)) == "2027-06-30T12:00:00Z"
    assert rfc3339(datetime(2027, 6, 30, 12, 0)) == "2027-06-30T12:00:00Z"  # naive is UTC


def test_rfc3339_seconds_drops_fractions_and_keeps_none() -> None:
    assert rfc3339_seconds(None) is None
    assert rfc3339_seconds(NOON.replace(microsecond=999_999)) == "2027-06-30T12:00:00Z"
    assert rfc3339_seconds(datetime(2027, 6, 30, 14, 0, tzinfo=PLUS2)) == "2027-06-30T12:00:00Z"


def test_rfc3339_milliseconds_always_has_three_digits() -> None:
    assert rfc3339_milliseconds(NOON) == "2027-06-30T12:00:00.000Z"
    assert rfc3339_milliseconds(NOON.replace(microsecond=250_999)) == "2027-06-30T12:00:00.250Z"


def test_same_second() -> None:
    assert same_second(NOON, NOON.replace(microsecond=5))
    assert same_second(NOON, datetime(2027, 6, 30, 14, 0, tzinfo=PLUS2))
    assert same_second(None, None)
    assert not same_second(NOON, None)
    assert not same_second(NOON, NOON + timedelta(seconds=1))


def test_minutes_as_given_converts_nothing() -> None:
    assert minutes_as_given(datetime(2027, 6, 30, 14, 5, 59, tzinfo=PLUS2)) == "2027-06-30 14:05"


@pytest.mark.parametrize(("text", "expected"), [
    ("2027-06-30T12:00:00Z", NOON),
    ("2027-06-30T12:00:00z", NOON),
    ("2027-06-30t12:00:00Z", NOON),
    ("2027-06-30T12:00:00", NOON),
    ("2027-06-30T14:00:00+02:00", NOON),
    ("2027-06-30T12:00:00.123456789Z", NOON.replace(microsecond=123456)),
])
def test_parse_rfc3339(text: str, expected: datetime) -> None:
    parsed = parse_rfc3339(text)
    assert parsed == expected
    assert parsed.tzinfo is not None


def test_parse_rfc3339_keeps_the_offset_it_was_given() -> None:
    assert parse_rfc3339("2027-06-30T14:00:00+02:00").utcoffset() == timedelta(hours=2)


@pytest.mark.parametrize("text", ["", "yesterday", "2027-13-01T00:00:00Z", "2027-06-30T25:00Z"])
def test_parse_rfc3339_refuses_what_is_not_a_time(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339(text)


@pytest.mark.parametrize("moment", [
    NOON, NOON.replace(microsecond=1), datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
])
def test_round_trip(moment: datetime) -> None:
    assert parse_rfc3339(rfc3339(moment)) == moment
    assert as_utc(parse_rfc3339(rfc3339(moment))) == moment


def test_incus_adapter_keeps_its_quirks_on_top_of_the_shared_format() -> None:
    assert format_time(None) == CLEAR_EXPIRY == "1970-01-01T00:00:00Z"
    assert format_time(NOON) == rfc3339(NOON)
    assert parse_time("1970-01-01T00:00:00Z", expiry=True) is None
    assert parse_time("1970-01-01T00:00:00Z") == datetime(1970, 1, 1, tzinfo=UTC)
    assert parse_time("0001-01-01T00:00:00Z") is None
    assert parse_time("not a time") is None


def test_lease_record_round_trips_to_the_millisecond() -> None:
    record = LeaseRecord(holder="ci", since=NOON.replace(microsecond=250_000),
                         expires=NOON + timedelta(seconds=60), token="t")
    assert '"since":"2027-06-30T12:00:00.250Z"' in record.encode()
    assert LeaseRecord.decode(record.encode()) == record
    assert record.describe() == "ci since 2027-06-30T12:00:00Z (lease expires 2027-06-30T12:01:00Z)"


def test_a_naive_time_shown_to_people_is_utc_with_a_z() -> None:
    # Before times.py, render.units.value printed a naive datetime without the "Z"
    # its docstring promises ("Datetimes are RFC 3339 in UTC with a Z").
    assert value(datetime(2027, 6, 30, 12, 0)) == "2027-06-30T12:00:00Z"
    assert value(datetime(2027, 6, 30, 14, 0, tzinfo=PLUS2)) == "2027-06-30T12:00:00Z"
