"""Catalogs of a public Incus server's image listing (reconciler.adapters.remotes.incus)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest

from reconciler.adapters.remotes.incus import build_catalog
from reconciler.errors import RemoteError
from reconciler.model.config import RemoteSpec
from reconciler.model.remote import RemoteCatalog

REMOTE = RemoteSpec(name="internal", url="https://10.0.0.5:8443", protocol="incus")


def resolved(cat: RemoteCatalog, alias: str, type_: str, arch: str, attr: str) -> object:
    """An attribute of the image ``alias`` resolves to, or None when it resolves to nothing."""
    image = cat.resolve(alias, type_, arch)
    return None if image is None else getattr(image, attr)


def h(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def image(label: str, *aliases: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "fingerprint": h(label), "architecture": "x86_64", "type": "container",
        "size": 1234, "public": True, "created_at": "2025-03-04T05:06:07.123456789Z",
        "expires_at": "0001-01-01T00:00:00Z", "cached": False,
        "aliases": [{"name": a, "description": ""} for a in aliases],
        "properties": {"os": "Debian", "release": "12", "serial": "20250304_0000"},
    }
    body.update(fields)
    return body


def test_aliases_are_keyed_by_the_image_type_and_architecture() -> None:
    cat = build_catalog(REMOTE, [
        image("ct", "debian/12"),
        image("vm", "debian/12/vm", type="virtual-machine"),
        image("arm", "debian/12/arm", architecture="aarch64"),
    ])
    assert cat.alias_table == {
        "debian/12|container|x86_64": h("ct"),
        "debian/12/vm|virtual-machine|x86_64": h("vm"),
        "debian/12/arm|container|aarch64": h("arm"),
    }
    assert resolved(cat, "debian/12", "container", "x86_64", "aliases") == ("debian/12",)
    assert cat.resolve("debian/12", "virtual-machine", "x86_64") is None
    assert (cat.remote, cat.url, cat.protocol) == ("internal", "https://10.0.0.5:8443", "incus")


def test_fields_of_an_image() -> None:
    cat = build_catalog(REMOTE, [image(
        "a", "x", expires_at="2027-06-30T00:00:00+02:00",
        properties={"os": "Debian", "serial": "20250304_0000", "requirements.secureboot": "false",
                    "empty": ""},
    )])
    (img,) = cat.images
    assert img.fingerprint == h("a")
    assert (img.type, img.architecture, img.remote_architecture) == ("container", "x86_64",
                                                                     "x86_64")
    assert img.size == 1234
    assert img.version == "20250304_0000"
    assert img.created_at == datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
    assert img.expires_at == datetime(2027, 6, 29, 22, 0, tzinfo=UTC)
    assert img.requirements == {"secureboot": "false"}
    assert img.properties == {"os": "Debian", "serial": "20250304_0000",
                              "requirements.secureboot": "false"}
    assert img.files == ()


@pytest.mark.parametrize("zero", ["0001-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "", None])
def test_zero_times_mean_none(zero: str | None) -> None:
    (img,) = build_catalog(REMOTE, [image("a", expires_at=zero, created_at=zero)]).images
    assert (img.expires_at, img.created_at) == (None, None)


def test_missing_type_is_container() -> None:
    body = image("a", "x")
    del body["type"]
    assert build_catalog(REMOTE, [body]).images[0].type == "container"


def test_unknown_architecture_or_type_is_skipped() -> None:
    cat = build_catalog(REMOTE, [image("a", "x", architecture="vax"),
                                 image("b", "y", type="oci-thing"), image("c", "z")])
    assert [i.fingerprint for i in cat.images] == [h("c")]
    assert cat.alias_table == {"z|container|x86_64": h("c")}


def test_architecture_aliases_are_canonicalised() -> None:
    (img,) = build_catalog(REMOTE, [image("a", "x", architecture="amd64")]).images
    assert (img.architecture, img.remote_architecture) == ("x86_64", "amd64")


@pytest.mark.parametrize("bad", [
    "x", {"fingerprint": h("a")}, [1],
    [image("a", fingerprint="abc")],
    [image("a", architecture=None)],
    [image("a", properties={"k": 1})],
    [image("a", size="big")],
    [image("a", aliases="x")],
    [image("a", aliases=[{"description": "no name"}])],
    [image("a", created_at="yesterday")],
    [image("a", expires_at=5)],
])
def test_garbage_is_a_remote_error(bad: Any) -> None:
    with pytest.raises(RemoteError, match=r"^remote 'internal': 1\.0/images\?recursion=1: "):
        build_catalog(REMOTE, bad)
