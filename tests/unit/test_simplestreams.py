"""Simplestreams parsing: one test per rule the daemon applies (reconciler.remotes)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest

from reconciler.adapters.remotes.simplestreams import build_catalog, parse_index
from reconciler.errors import RemoteError
from reconciler.model.config import RemoteSpec
from reconciler.model.remote import RemoteCatalog

REMOTE = RemoteSpec(name="test", url="https://images.test", protocol="simplestreams")

COMBINED_FIELD = {
    "squashfs": "combined_squashfs_sha256",
    "root.tar.xz": "combined_rootxz_sha256",
    "disk-kvm.img": "combined_disk-kvm-img_sha256",
    "disk1.img": "combined_disk1-img_sha256",
    "uefi1.img": "combined_uefi1-img_sha256",
}


def resolved(cat: RemoteCatalog, alias: str, type_: str, arch: str, attr: str) -> object:
    """An attribute of the image ``alias`` resolves to, or None when it resolves to nothing."""
    image = cat.resolve(alias, type_, arch)
    return None if image is None else getattr(image, attr)


def h(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def fp(serial: str, ftype: str, arch: str = "amd64") -> str:
    """The fingerprint the fixtures give (serial, rootfs ftype, arch)."""
    return h(f"{serial}:{ftype}:{arch}")


def item(ftype: str, name: str, size: int = 100, **extra: Any) -> dict[str, Any]:
    return {"ftype": ftype, "path": f"images/{name}", "sha256": h(name), "size": size, **extra}


def version(serial: str, *rootfs: str, arch: str = "amd64", **meta_extra: Any) -> dict[str, Any]:
    """A split version: one metadata item plus one item per rootfs ftype."""
    meta = item("incus.tar.xz", f"{serial}/{arch}/meta", size=10,
                **{COMBINED_FIELD[r]: fp(serial, r, arch) for r in rootfs}, **meta_extra)
    items = {"incus.tar.xz": meta}
    items.update({r: item(r, f"{serial}/{arch}/{r}") for r in rootfs})
    return {"items": items}


def product(versions: dict[str, Any], arch: str = "amd64", aliases: str = "tiny/1.0",
            **fields: Any) -> dict[str, Any]:
    return {"aliases": aliases, "arch": arch, "os": "Tiny", "release": "1.0",
            "release_title": "one", "variant": "default", "versions": versions, **fields}


def doc(**products: dict[str, Any]) -> dict[str, Any]:
    return {"content_id": "images", "datatype": "image-downloads", "format": "products:1.0",
            "products": products}


def catalog(*docs: dict[str, Any], host_arch: str | None = None) -> RemoteCatalog:
    return build_catalog(REMOTE, list(docs), host_arch)


def fps(cat: RemoteCatalog) -> set[str]:
    return {image.fingerprint for image in cat.images}


# --- the index ---------------------------------------------------------------------------


def test_index_lists_image_downloads_with_products_only() -> None:
    index = {"format": "index:1.0", "index": {
        "images": {"datatype": "image-downloads", "path": "streams/v1/images.json",
                   "products": ["a:1:amd64:default"]},
        "empty": {"datatype": "image-downloads", "path": "streams/v1/empty.json",
                  "products": []},
        "other": {"datatype": "content-download", "path": "streams/v1/other.json",
                  "products": ["x"]},
        "again": {"datatype": "image-downloads", "path": "streams/v1/images.json",
                  "products": ["b"]},
        "more": {"datatype": "image-downloads", "path": "streams/v1/more.json",
                 "products": ["c"]},
    }}
    assert parse_index(index) == ["streams/v1/images.json", "streams/v1/more.json"]


@pytest.mark.parametrize("index", [
    [], "x", {}, {"index": []}, {"index": {"images": "x"}},
    {"index": {"images": {"datatype": "image-downloads", "products": ["a"]}}},
    {"index": {"images": {"datatype": "image-downloads", "path": "p", "products": "a"}}},
])
def test_index_garbage_is_a_remote_error(index: object) -> None:
    with pytest.raises(RemoteError, match=r"remote 'test': streams/v1/index\.json: "):
        parse_index(index, remote="test")


# --- which items form an image, and their fingerprints ---------------------------------------


def test_root_tar_xz_fingerprint_is_combined_rootxz_sha256() -> None:
    cat = catalog(doc(p=product({"20250101_0000": version("20250101_0000", "root.tar.xz")})))
    (image,) = cat.images
    assert image.fingerprint == fp("20250101_0000", "root.tar.xz")
    assert image.type == "container"


def test_root_tar_xz_falls_back_to_combined_sha256() -> None:
    v = version("20250101_0000", "root.tar.xz")
    meta = v["items"]["incus.tar.xz"]
    meta["combined_sha256"] = meta.pop("combined_rootxz_sha256")
    (image,) = catalog(doc(p=product({"20250101_0000": v}))).images
    assert image.fingerprint == fp("20250101_0000", "root.tar.xz")


def test_squashfs_fingerprint_and_squashfs_wins_the_alias_over_root_tar_xz() -> None:
    cat = catalog(doc(p=product(
        {"20250101_0000": version("20250101_0000", "root.tar.xz", "squashfs")})))
    squash, rootxz = fp("20250101_0000", "squashfs"), fp("20250101_0000", "root.tar.xz")
    assert fps(cat) == {squash, rootxz}
    assert cat.alias_table[RemoteCatalog.alias_key("tiny/1.0", "container", "x86_64")] == squash
    assert resolved(cat, "tiny/1.0/amd64", "container", "x86_64", "fingerprint") == squash
    assert [i.aliases for i in cat.images if i.fingerprint == rootxz] == [()]


@pytest.mark.parametrize("ftype", ["disk-kvm.img", "disk1.img", "uefi1.img"])
def test_vm_rootfs_items_make_virtual_machine_images(ftype: str) -> None:
    (image,) = catalog(doc(p=product({"20250101_0000": version("20250101_0000", ftype)}))).images
    assert image.fingerprint == fp("20250101_0000", ftype)
    assert image.type == "virtual-machine"
    assert image.properties["type"] == ftype


def test_container_and_vm_share_alias_names_per_type() -> None:
    cat = catalog(doc(p=product(
        {"20250101_0000": version("20250101_0000", "squashfs", "disk-kvm.img")})))
    assert resolved(cat, "tiny/1.0", "container", "x86_64", "fingerprint") == \
        fp("20250101_0000", "squashfs")
    assert resolved(cat, "tiny/1.0", "virtual-machine", "x86_64", "fingerprint") == \
        fp("20250101_0000", "disk-kvm.img")


def test_combined_tarball_is_fingerprinted_by_its_sha256() -> None:
    combined = item("incus_combined.tar.gz", "combined", size=500)
    vm = item("incus_combined.tar.gz", "combined-vm", size=700,
              combined_type="virtual-machine")
    cat = catalog(doc(p=product({"20250101_0000": {"items": {"c": combined, "v": vm}}})))
    ct = cat.by_fingerprint(h("combined"))
    vmi = cat.by_fingerprint(h("combined-vm"))
    assert ct is not None and vmi is not None
    assert (ct.type, vmi.type) == ("container", "virtual-machine")
    assert [f.path for f in ct.files] == ["images/combined"]
    assert ct.size == 500
    assert ct.properties["type"] == "tar.gz"


def test_lxd_items_are_ignored() -> None:
    items = {
        "lxd.tar.xz": item("lxd.tar.xz", "lxdmeta", combined_rootxz_sha256=h("x"),
                           combined_squashfs_sha256=h("y")),
        "root.tar.xz": item("root.tar.xz", "root"),
        "squashfs": item("squashfs", "sq"),
        "lxd_combined.tar.gz": item("lxd_combined.tar.gz", "lxdcombined"),
    }
    assert catalog(doc(p=product({"20250101_0000": {"items": items}}))).images == ()


def test_other_ftypes_are_ignored() -> None:
    v = version("20250101_0000", "squashfs")
    v["items"]["delta"] = item("squashfs.vcdiff", "delta", delta_base="20241231_0000")
    v["items"]["manifest"] = item("manifest", "manifest")
    assert fps(catalog(doc(p=product({"20250101_0000": v})))) == {fp("20250101_0000", "squashfs")}


def test_empty_fingerprint_field_skips_the_pairing() -> None:
    v = version("20250101_0000", "squashfs", "root.tar.xz")
    v["items"]["incus.tar.xz"]["combined_squashfs_sha256"] = ""
    assert fps(catalog(doc(p=product({"20250101_0000": v})))) == {fp("20250101_0000",
                                                                        "root.tar.xz")}


@pytest.mark.parametrize("serial", ["latest", "2025010", "2025-01-01", "20251301_0000",
                                    "20250230", "x20250101"])
def test_version_without_a_date_key_is_skipped(serial: str) -> None:
    cat = catalog(doc(p=product({
        serial: version(serial, "squashfs"),
        "20250101": version("20250101", "squashfs"),
    })))
    assert fps(cat) == {fp("20250101", "squashfs")}


def test_unknown_architecture_is_skipped() -> None:
    cat = catalog(doc(
        good=product({"20250101_0000": version("20250101_0000", "squashfs")}),
        bad=product({"20250101_0000": version("20250101_0000", "squashfs", arch="vax")},
                    arch="vax"),
    ))
    assert fps(cat) == {fp("20250101_0000", "squashfs")}


@pytest.mark.parametrize(("raw", "canonical"), [
    ("amd64", "x86_64"), ("arm64", "aarch64"), ("armhf", "armv7l"), ("i386", "i686"),
    ("ppc64el", "ppc64le"), ("s390x", "s390x"), ("riscv64", "riscv64"),
    ("loong64", "loongarch64"),
])
def test_architecture_is_canonicalised(raw: str, canonical: str) -> None:
    (image,) = catalog(doc(p=product({"20250101_0000": version("20250101_0000", "squashfs",
                                                                arch=raw)}, arch=raw))).images
    assert (image.architecture, image.remote_architecture) == (canonical, raw)
    assert image.properties["architecture"] == raw
    assert set(catalog(doc(p=product({"20250101_0000": version("20250101_0000", "squashfs",
                                                                arch=raw)}, arch=raw)))
               .alias_table) == {f"tiny/1.0|container|{canonical}",
                                 f"tiny/1.0/{raw}|container|{canonical}"}


# --- aliases ---------------------------------------------------------------------------------


def test_newest_version_wins_the_alias() -> None:
    cat = catalog(doc(p=product({
        "20250101_0000": version("20250101_0000", "squashfs"),
        "20250301_0000": version("20250301_0000", "squashfs"),
        "20250201_0000": version("20250201_0000", "squashfs"),
    })))
    newest = fp("20250301_0000", "squashfs")
    assert resolved(cat, "tiny/1.0", "container", "x86_64", "fingerprint") == newest
    assert {i.fingerprint: i.aliases for i in cat.images} == {
        newest: ("tiny/1.0", "tiny/1.0/amd64"),
        fp("20250201_0000", "squashfs"): (),
        fp("20250101_0000", "squashfs"): (),
    }
    assert [i.version for i in cat.images] == ["20250301_0000", "20250201_0000", "20250101_0000"]


def test_every_comma_separated_alias_gets_a_short_and_a_long_name() -> None:
    cat = catalog(doc(p=product({"20250101_0000": version("20250101_0000", "squashfs")},
                                aliases="tiny/1.0/default,tiny/1.0,tiny")))
    f = fp("20250101_0000", "squashfs")
    assert cat.alias_table == {
        f"{name}|container|x86_64": f
        for name in ("tiny/1.0/default", "tiny/1.0/default/amd64", "tiny/1.0", "tiny/1.0/amd64",
                     "tiny", "tiny/amd64")
    }


def test_short_alias_is_registered_for_every_architecture() -> None:
    cat = catalog(doc(
        a=product({"20250101_0000": version("20250101_0000", "squashfs")}),
        b=product({"20250101_0000": version("20250101_0000", "squashfs", arch="arm64")},
                  arch="arm64"),
    ))
    assert resolved(cat, "tiny/1.0", "container", "x86_64", "fingerprint") == \
        fp("20250101_0000", "squashfs")
    assert resolved(cat, "tiny/1.0", "container", "aarch64", "fingerprint") == \
        fp("20250101_0000", "squashfs", "arm64")
    assert cat.resolve("tiny/1.0/arm64", "container", "aarch64") is not None
    assert cat.resolve("tiny/1.0/arm64", "container", "x86_64") is None


def test_host_arch_limits_listed_short_names_like_the_daemon() -> None:
    cat = catalog(doc(
        a=product({"20250101_0000": version("20250101_0000", "squashfs")}),
        b=product({"20250101_0000": version("20250101_0000", "squashfs", arch="arm64")},
                  arch="arm64"),
    ), host_arch="amd64")
    listed = {i.architecture: i.aliases for i in cat.images}
    assert listed == {"x86_64": ("tiny/1.0", "tiny/1.0/amd64"), "aarch64": ("tiny/1.0/arm64",)}
    assert "tiny/1.0|container|aarch64" in cat.alias_table


def test_alias_order_spans_products_files() -> None:
    old = doc(p=product({"20250101_0000": version("20250101_0000", "squashfs")}))
    new = doc(q=product({"20250601_0000": version("20250601_0000", "squashfs")}))
    cat = catalog(old, new)
    assert resolved(cat, "tiny/1.0", "container", "x86_64", "fingerprint") == \
        fp("20250601_0000", "squashfs")


def test_same_fingerprint_twice_is_one_image() -> None:
    d = doc(p=product({"20250101_0000": version("20250101_0000", "squashfs")}))
    assert len(catalog(d, d).images) == 1


# --- derived fields ---------------------------------------------------------------------------


def test_files_size_dates_and_expiry() -> None:
    cat = catalog(doc(p=product({"20250102_0512": version("20250102_0512", "root.tar.xz")},
                                support_eol="2027-06-30")))
    (image,) = cat.images
    assert [(f.ftype, f.path, f.size) for f in image.files] == [
        ("incus.tar.xz", "images/20250102_0512/amd64/meta", 10),
        ("root.tar.xz", "images/20250102_0512/amd64/root.tar.xz", 100),
    ]
    assert image.files[1].sha256 == h("20250102_0512/amd64/root.tar.xz")
    assert image.size == 110
    assert image.created_at == datetime(2025, 1, 2, tzinfo=UTC)
    assert image.expires_at == datetime(2027, 6, 30, tzinfo=UTC)
    assert image.version == "20250102_0512"


@pytest.mark.parametrize("eol", ["", "2027-6-30", "someday", "2027-02-30"])
def test_unparsable_support_eol_means_no_expiry(eol: str) -> None:
    cat = catalog(doc(p=product({"20250101": version("20250101", "squashfs")}, support_eol=eol)))
    assert cat.images[0].expires_at is None


def test_properties_and_requirements_as_the_daemon_writes_them() -> None:
    v = version("20250101_0000", "squashfs")
    v["label"] = "build 7"
    cat = catalog(doc(p=product({"20250101_0000": v}, variant="cloud", version="1.0",
                                requirements={"secureboot": "false", "nesting": "true"})))
    (image,) = cat.images
    assert image.properties == {
        "os": "Tiny", "release": "1.0", "version": "1.0", "architecture": "amd64",
        "label": "build 7", "serial": "20250101_0000",
        "description": "Tiny one amd64 (build 7) (20250101_0000)",
        "variant": "cloud", "type": "squashfs",
        "requirements.secureboot": "false", "requirements.nesting": "true",
    }
    assert image.requirements == {"secureboot": "false", "nesting": "true"}


def test_empty_properties_are_dropped() -> None:
    cat = catalog(doc(p={"arch": "amd64", "versions": {"20250101": version("20250101",
                                                                             "squashfs")}}))
    assert cat.images[0].properties == {
        "architecture": "amd64", "serial": "20250101", "description": "  amd64 (20250101)",
        "type": "squashfs",
    }
    assert cat.images[0].aliases == ()
    assert cat.alias_table == {}


def test_catalog_names_the_remote() -> None:
    cat = catalog(doc())
    assert (cat.remote, cat.url, cat.protocol) == ("test", "https://images.test", "simplestreams")


# --- garbage ------------------------------------------------------------------------------------


def _bad_sha() -> dict[str, Any]:
    v = version("20250101", "squashfs")
    v["items"]["squashfs"]["sha256"] = "nothex"
    return doc(p=product({"20250101": v}))


def _bad_fp() -> dict[str, Any]:
    v = version("20250101", "squashfs")
    v["items"]["incus.tar.xz"]["combined_squashfs_sha256"] = "ABC"
    return doc(p=product({"20250101": v}))


def _no_path() -> dict[str, Any]:
    v = version("20250101", "squashfs")
    del v["items"]["squashfs"]["path"]
    return doc(p=product({"20250101": v}))


@pytest.mark.parametrize("bad", [
    [], "products", {}, {"products": []}, doc(p="x"),  # type: ignore[arg-type]
    doc(p={"versions": {}}),
    doc(p={"arch": "amd64"}),
    doc(p={"arch": 64, "versions": {}}),
    doc(p=product({"20250101": "x"})),
    doc(p=product({"20250101": {"items": []}})),
    doc(p=product({"20250101": {"items": {"a": {"path": "x"}}}})),
    doc(p=product({"20250101": {"items": {"a": {"ftype": "squashfs", "size": "big"}}}})),
    doc(p=product({}, aliases=["a"])),  # type: ignore[arg-type]
    doc(p=product({}, requirements={"nesting": True})),
    _bad_sha(), _bad_fp(), _no_path(),
])
def test_garbage_is_a_remote_error(bad: object) -> None:
    """Garbage fails the catalog (its alias table) or the reading of its builds."""
    with pytest.raises(RemoteError) as caught:
        build_catalog(REMOTE, [bad], paths=["streams/v1/images.json"]).images  # noqa: B018
    assert str(caught.value).startswith("remote 'test': streams/v1/images.json")
    assert caught.value.remote == "test"


@pytest.mark.parametrize(("size", "why"), [
    (10**18, r"'size' is 1000000000000000000 bytes, more than 1 TiB"),
    ((1 << 40) + 1, r"more than 1 TiB"),
    (1e18, r"'size' is not a non-negative integer \(float\)"),
    (-1, r"not a non-negative integer"),
    (True, r"not a non-negative integer"),
])
def test_an_absurd_size_is_a_remote_error(size: object, why: str) -> None:
    v = version("20250101", "squashfs")
    v["items"]["squashfs"]["size"] = size
    with pytest.raises(RemoteError, match=r"remote 'test': .*" + why):
        catalog(doc(p=product({"20250101": v}))).resolve("tiny/1.0", "container", "x86_64")


def test_a_size_of_one_tib_is_believed() -> None:
    v = version("20250101", "squashfs")
    v["items"]["squashfs"]["size"] = 1 << 40
    assert catalog(doc(p=product({"20250101": v}))).images[0].size == (1 << 40) + 10
