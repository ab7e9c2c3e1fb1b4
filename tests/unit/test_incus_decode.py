"""The pure decoder of the Incus daemon's JSON, on canned answers.

The answers below have the shapes Incus 6.0.4 sends (``GET /1.0``, ``GET
/1.0/images?recursion=1``, ``GET /1.0/projects/<name>``, ``GET /1.0/profiles?recursion=1``,
``GET /1.0/instances?recursion=1``, ``GET /1.0/storage-pools/<pool>/resources``),
trimmed to the fields that matter plus a few the decoder must ignore.
"""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from reconciler.adapters import incus_decode as dec
from reconciler.adapters.remotes.incus import build_catalog
from reconciler.model.config import RemoteSpec
from reconciler.model.observed import ObservedAlias, UpdateSource

FP = "06b86454720d36b14b8c1ad3a7e6e5d1c8c9d17f3a9b0d6e1c2f4a5b6c7d94bb"
FP2 = "1" * 64

IMAGE: dict[str, Any] = {
    "aliases": [{"name": "debian/12", "description": "Debian 12"},
                {"name": "deb", "description": ""}],
    "architecture": "x86_64",
    "auto_update": True,
    "cached": False,
    "fingerprint": FP,
    "filename": "incus.tar.xz",
    "properties": {"architecture": "amd64", "description": "Debian bookworm amd64",
                   "os": "Debian", "release": "bookworm", "serial": "20260101_05:24",
                   "type": "squashfs", "variant": "default", "user.empty": ""},
    "public": False,
    "expires_at": "1970-01-01T00:00:00Z",
    "created_at": "2026-01-01T00:00:00Z",
    "last_used_at": "0001-01-01T00:00:00Z",
    "uploaded_at": "2026-01-02T10:11:12.123456789Z",
    "size": 94593572,
    "type": "container",
    "update_source": {"alias": "debian/12", "certificate": "", "image_type": "",
                      "protocol": "simplestreams",
                      "server": "https://images.linuxcontainers.org"},
    "profiles": ["default"],
    "project": "default",
}

SERVER: dict[str, Any] = {
    "api_extensions": ["images_all_projects"],
    "api_status": "stable",
    "api_version": "1.0",
    "auth": "trusted",
    "auth_user_method": "unix",
    "auth_user_name": "root",
    "config": {"core.https_address": "127.0.0.1:8443", "images.auto_update_interval": 12,
               "images.auto_update_cached": False, "user.nothing": None},
    "environment": {"architectures": ["x86_64", "i686"],
                    "certificate_fingerprint": "ab" * 32,
                    "server_version": "6.0.4", "server_clustered": False,
                    "storage": "dir"},
    "public": False,
}


def test_the_decoder_talks_to_nothing() -> None:
    tree = ast.parse(Path(dec.__file__).read_text())
    imported = {n.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for n in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}
    assert not imported & {"requests", "urllib3", "socket", "http"}


def test_an_image_object_becomes_an_observed_image() -> None:
    img = dec.image_from_api(IMAGE)
    assert (img.fingerprint, img.type, img.architecture) == (FP, "container", "x86_64")
    assert (img.auto_update, img.public, img.cached) == (True, False, False)
    assert img.profiles == ("default",)
    assert "user.empty" not in img.properties, "an empty value is no property"
    assert img.properties["serial"] == "20260101_05:24"
    assert img.expires_at is None, "1970 is no expiry"
    assert img.last_used_at is None, "the zero time is never"
    assert img.created_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert img.uploaded_at == datetime(2026, 1, 2, 10, 11, 12, 123456, tzinfo=UTC)
    assert img.size == 94593572
    assert img.update_source == UpdateSource(
        server="https://images.linuxcontainers.org", protocol="simplestreams",
        alias="debian/12", certificate="")
    assert img.aliases == (ObservedAlias(name="debian/12", description="Debian 12", target=FP),
                           ObservedAlias(name="deb", description="", target=FP))


def test_a_bare_image_reads_its_empty_values() -> None:
    img = dec.image_from_api({"fingerprint": FP2, "type": "virtual-machine",
                              "properties": None, "aliases": None, "profiles": [],
                              "expires_at": "2031-06-30T12:00:00Z", "created_at": "garbage"})
    assert img.type == "virtual-machine"
    assert (img.properties, img.aliases, img.profiles) == ({}, (), ())
    assert img.update_source is None
    assert img.expires_at == datetime(2031, 6, 30, 12, tzinfo=UTC)
    assert img.created_at is None
    assert dec.update_source({"server": "", "protocol": "simplestreams"}) is None


def test_fields_of_the_wrong_type_read_as_absent() -> None:
    img = dec.image_from_api({"fingerprint": FP2, "aliases": 5, "properties": ["x"],
                              "profiles": True, "size": [1], "update_source": "x"})
    assert (img.aliases, img.properties, img.profiles, img.size, img.update_source) == \
        ((), {}, (), 0, None)
    odd: dict[str, Any] = {"environment": ["x86_64"]}
    assert (dec.host_architecture(odd), dec.server_version(odd), dec.clustered(odd),
            dec.member_name(odd)) == ("", "", False, "")
    assert dec.profiles_from_api([{"name": "p", "devices": {"eth0": 7}}])["p"].devices == \
        {"eth0": {}}
    assert dec.instances_from_api([{"name": "c", "config": "x"}]) == {}


@pytest.mark.parametrize("fingerprint", [None, "", 7, "xyz", "B" * 64, FP2[:-1]])
def test_an_image_without_a_fingerprint_is_a_value_error(fingerprint: object) -> None:
    with pytest.raises(ValueError, match=r"^an image without a fingerprint$"):
        dec.image_from_api({"fingerprint": fingerprint})
    with pytest.raises(ValueError):
        dec.images_from_api([IMAGE, {"fingerprint": fingerprint}])


def test_the_image_list_is_sorted_by_fingerprint_and_skips_non_objects() -> None:
    listed = [IMAGE, "/1.0/images/xyz", {**IMAGE, "fingerprint": FP2, "aliases": []}]
    assert [i.fingerprint for i in dec.images_from_api(listed[::-1])] == [FP, FP2]
    assert dec.images_from_api(None) == ()


@pytest.mark.parametrize(("text", "expiry", "expected"), [
    ("1970-01-01T00:00:00Z", True, None),
    ("1970-01-01T00:00:00Z", False, datetime(1970, 1, 1, tzinfo=UTC)),
    ("0001-01-01T00:00:00Z", False, None),
    ("0001-01-01T00:00:00Z", True, None),
    ("2027-06-30T12:00:00Z", True, datetime(2027, 6, 30, 12, tzinfo=UTC)),
    ("2027-06-30T14:00:00+02:00", False,
     datetime(2027, 6, 30, 14, tzinfo=timezone(timedelta(hours=2)))),
    ("not a time", False, None), ("", True, None), (None, True, None), (5, False, None),
])
def test_incus_times(text: object, expiry: bool, expected: datetime | None) -> None:
    assert dec.parse_time(text, expiry=expiry) == expected


def test_a_cleared_expiry_is_written_as_the_epoch_and_reads_back_as_none() -> None:
    assert dec.format_time(None) == dec.CLEAR_EXPIRY
    assert dec.parse_time(dec.format_time(None), expiry=True) is None
    when = datetime(2027, 6, 30, 12, tzinfo=UTC)
    assert dec.parse_time(dec.format_time(when), expiry=True) == when


def test_the_remote_reader_uses_the_same_time_rule() -> None:
    """An Incus remote's public listing: the zero time and the epoch are no time."""
    spec = RemoteSpec(name="peer", url="https://peer.example:8443", protocol="incus")
    listed = [{**IMAGE, "created_at": "0001-01-01T00:00:00Z"},
              {**IMAGE, "fingerprint": FP2, "aliases": [],
               "expires_at": "2031-06-30T12:00:00Z", "created_at": "1970-01-01T00:00:00Z"}]
    by_fp = {i.fingerprint: i for i in build_catalog(spec, listed).images}
    assert (by_fp[FP].created_at, by_fp[FP].expires_at) == (None, None)
    assert by_fp[FP2].created_at is None
    assert by_fp[FP2].expires_at == datetime(2031, 6, 30, 12, tzinfo=UTC)


def test_server_info() -> None:
    assert dec.host_architecture(SERVER) == "x86_64"
    assert dec.server_version(SERVER) == "6.0.4"
    assert dec.server_fingerprint(SERVER) == "ab" * 32
    assert dec.config_map(SERVER["config"]) == {
        "core.https_address": "127.0.0.1:8443", "images.auto_update_interval": "12",
        "images.auto_update_cached": "false", "user.nothing": ""}
    assert dec.config_map(None) == {}
    bare: dict[str, Any] = {"environment": {}}
    assert (dec.host_architecture(bare), dec.server_version(bare),
            dec.server_fingerprint(bare)) == ("", "", "")


@pytest.mark.parametrize(("version", "cgroup"), [
    ("6.0.4", None), ("7.0", "v2"), ("10.1", "v2"), ("", None), ("git", None)])
def test_kernel_cgroup_from_the_server_version(version: str, cgroup: str | None) -> None:
    assert dec.kernel_cgroup(version) == cgroup


@pytest.mark.parametrize(("config", "enabled"), [
    ({"features.images": "true"}, True), ({"features.images": "false"}, False),
    ({"features.images": True}, True), ({"features.images": "on"}, True), ({}, False)])
def test_a_project_has_its_own_images_as_the_daemon_reads_features_images(
        config: dict[str, object], enabled: bool) -> None:
    project = {"name": "web", "description": "", "config": config, "used_by": []}
    assert dec.images_enabled(project) is enabled
    assert dec.images_enabled(None) is False


def test_profiles_by_name() -> None:
    listed = [
        {"name": "default", "description": "Default Incus profile", "config": {},
         "devices": {"root": {"path": "/", "pool": "default", "type": "disk"},
                     "eth0": {"name": "eth0", "network": "incusbr0", "type": "nic"}},
         "used_by": [], "project": "default"},
        {"name": "gpu", "config": {"security.nesting": True, "limits.cpu": 2},
         "devices": None},
        {"description": "no name"},
    ]
    profiles = dec.profiles_from_api(listed)
    assert list(profiles) == ["default", "gpu"]
    assert profiles["default"].devices["root"] == {"path": "/", "pool": "default",
                                                   "type": "disk"}
    assert profiles["gpu"].config == {"security.nesting": "true", "limits.cpu": "2"}
    assert profiles["gpu"].devices == {}


def test_instances_by_base_image() -> None:
    listed = [
        {"name": "web2", "config": {"volatile.base_image": FP, "image.os": "Debian"}},
        {"name": "web1", "config": {"volatile.base_image": FP}},
        {"name": "scratch", "config": {}},
        "/1.0/instances/other",
    ]
    assert dec.instances_from_api(listed) == {FP: ("web1", "web2")}
    assert dec.instances_from_api(None) == {}


def test_free_space_of_the_image_store() -> None:
    assert dec.images_pool("default/images") == "default"
    assert dec.images_pool("") == ""
    resources = {"space": {"used": 3_000, "total": 10_000}, "inodes": {"used": 1, "total": 9}}
    assert dec.free_bytes(resources) == 7_000
    assert dec.free_bytes({"space": {"used": 12, "total": 10}}) == 0
    assert dec.free_bytes({"space": {"total": 0, "used": 0}}) is None
    assert dec.free_bytes({}) is None
    assert dec.free_bytes(None) is None
