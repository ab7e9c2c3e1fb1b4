"""Which build an entry wants (contract "Tracking" and "Expiry").

Mirrors :mod:`reconciler.core.builds`: a pin wants its fingerprint; a tracked entry
without a lock file wants the build its remote alias names now; with a lock file,
the locked build (an entry missing from it is resolved live and warned about); an
``auto_update`` entry the daemon already moved past its locked build keeps the newer
image.  Only the remote's newest build may be pulled by alias.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from reconciler.core.builds import (
    expiry_of,
    iso,
    pull_alias,
    resolve_build,
    resolve_entry,
    same_time,
    short,
)
from reconciler.model.lock import LockedBuild, LockKey
from reconciler.model.observed import TargetState
from reconciler.model.remote import RemoteImage
from tests.support.builders import build, catalog, entry, image

CAT = catalog(*(build("debian/12", n) for n in (1, 2, 3)))


def _served(serial: int) -> RemoteImage:
    """Build ``serial`` as the catalog serves it (only the newest keeps the alias)."""
    found = CAT.by_fingerprint(build("debian/12", serial).fingerprint)
    assert found is not None
    return found


OLD, MID, NEW = _served(1), _served(2), _served(3)
KEY = LockKey("local", "r:debian/12", "container", "x86_64")


def _state(*fps: str, cached: bool = False, serial: str | None = None) -> TargetState:
    props = {"serial": serial} if serial else {}
    return TargetState(target="local", project="default", effective_project="default",
                       host_architecture="x86_64",
                       images=tuple(image(fp, cached=cached, properties=props) for fp in fps))


def _lock(b: RemoteImage) -> dict[LockKey, LockedBuild]:
    return {KEY: LockedBuild(fingerprint=b.fingerprint, version=b.version)}


def test_short_iso_and_same_time() -> None:
    assert short("abcdef0123456789") == "abcdef012345"
    assert short(None) == ""
    plus2 = datetime(2026, 5, 1, 14, 0, 0, 999, tzinfo=timezone(timedelta(hours=2)))
    assert iso(plus2) == "2026-05-01T12:00:00Z"
    assert iso(None) is None
    assert same_time(plus2, datetime(2026, 5, 1, 12, 0, tzinfo=UTC))
    assert not same_time(plus2, None)


def test_resolve_build_follows_the_alias_or_the_pin() -> None:
    assert resolve_build(entry("r:debian/12"), "x86_64", CAT) == NEW
    assert resolve_build(entry("r:debian/12", fingerprint=OLD.fingerprint), "x86_64",
                         CAT) == OLD
    assert resolve_build(entry("r:debian/12", fingerprint="f" * 64), "x86_64", CAT) is None
    assert resolve_build(entry("r:debian/12"), "aarch64", CAT) is None
    assert resolve_build(entry("r:debian/12"), "x86_64", None) is None


def test_without_a_lock_file_a_tracked_entry_wants_the_newest() -> None:
    res = resolve_entry(entry("r:debian/12"), "x86_64", CAT, None, _state(), [])
    assert (res.wanted, res.build, res.latest, res.warnings) == (NEW.fingerprint, NEW, True, [])


def test_a_pin_wants_its_fingerprint_even_when_the_remote_no_longer_serves_it() -> None:
    pin = "f" * 64
    res = resolve_entry(entry("r:debian/12", fingerprint=pin), "x86_64", CAT,
                        _lock(NEW), _state(), [])
    assert (res.wanted, res.build) == (pin, None)


def test_a_pin_ignores_the_lock_file() -> None:
    res = resolve_entry(entry("r:debian/12", fingerprint=OLD.fingerprint), "x86_64", CAT,
                        _lock(NEW), _state(), [])
    assert (res.wanted, res.build) == (OLD.fingerprint, OLD)


def test_an_entry_missing_from_the_lock_file_is_resolved_live_with_a_warning() -> None:
    res = resolve_entry(entry("r:debian/12"), "x86_64", CAT, {}, _state(), [])
    assert res.wanted == NEW.fingerprint
    assert [w.code for w in res.warnings] == ["lock.missing"]
    assert "incus-images lock" in res.warnings[0].message


def test_a_locked_older_build_is_wanted_and_not_latest() -> None:
    """Not the remote's newest: pulled by fingerprint, so the daemon gets no source."""
    res = resolve_entry(entry("r:debian/12"), "x86_64", CAT, _lock(OLD), _state(), [])
    assert (res.wanted, res.build, res.latest) == (OLD.fingerprint, OLD, False)
    assert res.warnings == []
    assert res.unavailable is not None and "lock --upgrade r:debian/12" in res.unavailable


def test_a_locked_newest_build_is_latest() -> None:
    res = resolve_entry(entry("r:debian/12"), "x86_64", CAT, _lock(NEW), _state(), [])
    assert (res.wanted, res.latest, res.warnings) == (NEW.fingerprint, True, [])


def test_auto_update_of_an_older_locked_build_warns_no_source_when_it_is_downloaded() -> None:
    e = entry("r:debian/12", auto_update=True)
    absent = resolve_entry(e, "x86_64", CAT, _lock(OLD), _state(), [])
    assert [w.code for w in absent.warnings] == ["auto_update.no_source"]
    cached = resolve_entry(e, "x86_64", CAT, _lock(OLD), _state(OLD.fingerprint, cached=True),
                           [])
    assert [w.code for w in cached.warnings] == ["auto_update.no_source"]
    present = resolve_entry(e, "x86_64", CAT, _lock(OLD), _state(OLD.fingerprint), [])
    assert present.warnings == []


def test_a_build_the_lock_names_and_the_remote_dropped_is_unavailable() -> None:
    dropped = catalog(*(build("debian/12", n) for n in (2, 3)))
    res = resolve_entry(entry("r:debian/12"), "x86_64", dropped, _lock(OLD), _state(), [])
    assert (res.wanted, res.build) == (OLD.fingerprint, None)
    assert res.unavailable is not None
    assert f"locked to {OLD.fingerprint} (version {OLD.version})" in res.unavailable


def test_auto_update_keeps_a_managed_image_the_daemon_moved_past_the_lock() -> None:
    """Contract "The daemon's auto-update": the newer fingerprint is not drift."""
    e = entry("r:debian/12", auto_update=True)
    state = _state(MID.fingerprint, NEW.fingerprint)
    res = resolve_entry(e, "x86_64", CAT, _lock(OLD), state,
                        [MID.fingerprint, NEW.fingerprint])
    assert (res.wanted, res.build) == (NEW.fingerprint, NEW)


def test_a_managed_image_older_than_the_lock_does_not_win() -> None:
    e = entry("r:debian/12", auto_update=True)
    res = resolve_entry(e, "x86_64", CAT, _lock(MID), _state(OLD.fingerprint),
                        [OLD.fingerprint])
    assert res.wanted == MID.fingerprint


def test_without_auto_update_the_lock_wins_over_a_newer_managed_image() -> None:
    res = resolve_entry(entry("r:debian/12"), "x86_64", CAT, _lock(OLD),
                        _state(NEW.fingerprint), [NEW.fingerprint])
    assert res.wanted == OLD.fingerprint


def test_an_unserved_managed_image_is_newer_by_its_serial_property() -> None:
    """No build date to compare: the daemon's ``serial`` property against the lock's version."""
    gone = "e" * 64
    e = entry("r:debian/12", auto_update=True)
    newer = resolve_entry(e, "x86_64", CAT, _lock(MID), _state(gone, serial="20990101_0000"),
                          [gone])
    assert (newer.wanted, newer.build) == (gone, None)
    older = resolve_entry(e, "x86_64", CAT, _lock(MID), _state(gone, serial="20000101_0000"),
                          [gone])
    assert older.wanted == MID.fingerprint


def test_pull_alias_is_the_long_form_only_for_a_foreign_architecture() -> None:
    arm = build("debian/12", 1, arch="aarch64")
    assert pull_alias(entry("r:debian/12"), NEW, "x86_64", "simplestreams") == "debian/12"
    assert pull_alias(entry("r:debian/12"), arm, "x86_64", "simplestreams") == "debian/12/arm64"
    assert pull_alias(entry("r:debian/12/arm64"), arm, "x86_64",
                      "simplestreams") == "debian/12/arm64"
    assert pull_alias(entry("r:debian/12"), arm, "x86_64", "incus") == "debian/12"


def test_expiry_is_declared_or_counted_from_the_build_date() -> None:
    at = datetime(2027, 1, 1, tzinfo=UTC)
    created = datetime(2026, 1, 1, tzinfo=UTC)
    assert expiry_of(entry(expires_at=at, expires_after_days=5), created) == at
    assert expiry_of(entry(expires_after_days=5), created) == created + timedelta(days=5)
    assert expiry_of(entry(expires_after_days=5), None) is None
    assert expiry_of(entry(), created) is None
