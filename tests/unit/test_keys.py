"""One identity for an entry on a target (reconciler.model.keys.EntryKey)."""

from __future__ import annotations

from reconciler.model.config import EntrySpec
from reconciler.model.fingerprint import short_fingerprint, short_hex
from reconciler.model.keys import EntryKey
from reconciler.model.lock import LockedBuild, LockedImage, LockFile, LockKey
from reconciler.render.units import short

FP = "a" * 64


def test_the_lock_key_is_the_entry_key() -> None:
    assert LockKey is EntryKey
    line = LockedImage(fingerprint=FP, source="r:deb/12", type="container",
                       architecture="x86_64", target="local")
    assert line.key == EntryKey(target="local", source="r:deb/12", type="container",
                                architecture="x86_64")


def test_equal_exactly_when_all_four_parts_are() -> None:
    key = EntryKey("local", "r:deb/12", "container", "x86_64")
    assert key == EntryKey("local", "r:deb/12", "container", "x86_64")
    assert len({key, key._replace(target="prod"), key._replace(source="r:deb/13"),
                key._replace(type="virtual-machine"), key._replace(architecture="aarch64")}) == 5


def test_sort_key_orders_by_source_type_architecture_then_target() -> None:
    keys = [EntryKey("a", "r:z/1", "container", "x86_64"),
            EntryKey("z", "r:a/1", "virtual-machine", "x86_64"),
            EntryKey("b", "r:a/1", "container", "x86_64"),
            EntryKey("a", "r:a/1", "container", "x86_64"),
            EntryKey("a", "r:a/1", "container", "aarch64")]
    assert [k.sort_key() for k in sorted(keys, key=EntryKey.sort_key)] == [
        ("r:a/1", "container", "aarch64", "a"),
        ("r:a/1", "container", "x86_64", "a"),
        ("r:a/1", "container", "x86_64", "b"),
        ("r:a/1", "virtual-machine", "x86_64", "z"),
        ("r:z/1", "container", "x86_64", "a"),
    ]


def test_label() -> None:
    key = EntryKey("local", "test:tiny/1.0", "container", "x86_64")
    assert key.label() == "test:tiny/1.0 (container, x86_64) on local"


def test_lock_file_lines_are_in_entry_key_order_and_unique() -> None:
    b = LockedBuild(fingerprint=FP)
    locks = {EntryKey("prod", "r:deb/1", "container", "x86_64"): b,
             EntryKey("local", "r:deb/1", "container", "x86_64"): b,
             EntryKey("local", "r:alp/3", "container", "aarch64"): b}
    lock = LockFile.of(locks)
    assert [i.key for i in lock.images] == sorted(locks, key=EntryKey.sort_key)
    assert lock.locks() == locks


def test_short_fingerprint_says_what_a_missing_one_reads_as() -> None:
    fp = "0123456789abcdef" * 4
    assert short_fingerprint(fp) == "0123456789ab"
    assert short_fingerprint(None) == short_fingerprint("") == "?"
    assert short_fingerprint(None, missing="") == ""
    assert short is short_fingerprint
    assert short_hex("f" * 40) == "f" * 12


def test_an_entry_without_an_architecture_is_keyed_by_its_targets_host() -> None:
    entry = EntrySpec(target="local", source="r:deb/12", remote="r", remote_alias="deb/12")
    assert entry.key("x86_64") == EntryKey("local", "r:deb/12", "container", "x86_64")
    arm = entry.model_copy(update={"architecture": "aarch64"})
    assert arm.key("x86_64") == EntryKey("local", "r:deb/12", "container", "aarch64")
