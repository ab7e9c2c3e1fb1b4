"""Generated simplestreams products documents: public-size, or small and tricky.

:func:`public_like` writes what ``images.linuxcontainers.org`` serves in shape and
size (about 2,168 products and 25,797 images in ~20 MB with the defaults): split
container and VM versions with delta items, several architectures and variants.
Its fingerprints are made up: nothing is downloadable, it is for reading only.

:func:`tricky` is small and random (seeded): aliases shared across products, the
same fingerprint in two products, combined tarballs, unknown architectures and
undated versions, rootfs types the daemon ranks, empty fingerprint fields.  Tests
compare how two catalog builders resolve it.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

_ARCHES = ("amd64", "arm64", "armhf", "i386", "ppc64el", "riscv64", "s390x")
_VARIANTS = ("default", "cloud", "desktop")


def _sha(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def _file(ftype: str, path: str, size: int, **extra: Any) -> dict[str, Any]:
    return {"ftype": ftype, "path": path, "sha256": _sha(path), "size": size, **extra}


def _version(key: str, serial: str, vm: bool) -> dict[str, Any]:
    base = f"images/{key.replace(':', '/')}/{serial}"
    meta_extra = {"combined_squashfs_sha256": _sha(f"{base}:squashfs"),
                  "combined_rootxz_sha256": _sha(f"{base}:rootxz"),
                  "combined_sha256": _sha(f"{base}:rootxz")}
    items = {"root.tar.xz": _file("root.tar.xz", f"{base}/rootfs.tar.xz", 120_000_000),
             "root.squashfs": _file("squashfs", f"{base}/rootfs.squashfs", 110_000_000),
             "root.squashfs.vcdiff": _file("squashfs.vcdiff", f"{base}/rootfs.vcdiff",
                                           9_000_000, delta_base="20250101_07:42")}
    if vm:
        meta_extra["combined_disk-kvm-img_sha256"] = _sha(f"{base}:disk")
        items["disk.qcow2"] = _file("disk-kvm.img", f"{base}/disk.qcow2", 400_000_000)
        items["disk.qcow2.vcdiff"] = _file("disk-kvm.img.vcdiff", f"{base}/disk.vcdiff",
                                           30_000_000, delta_base="20250101_07:42")
    items["incus.tar.xz"] = _file("incus.tar.xz", f"{base}/incus.tar.xz", 1_000,
                                  **meta_extra)
    items["lxd.tar.xz"] = _file("lxd.tar.xz", f"{base}/lxd.tar.xz", 1_000)
    return {"items": items}


def public_like(products: int = 2168, versions: int = 4, no_vm_every: int = 30) -> dict[str, Any]:
    """A products document like the public server's (defaults: ~20 MB, ~25,800 images)."""
    found: dict[str, Any] = {}
    for n in range(products):
        os_name, release = f"os{n // 60}", f"r{(n // 21) % 3}"
        arch, variant = _ARCHES[n % len(_ARCHES)], _VARIANTS[(n // 7) % 3]
        key = f"{os_name}:{release}:{arch}:{variant}"
        vm = n % no_vm_every != 0
        serials = [f"2025{m + 1:02d}{(n % 27) + 1:02d}_07:42" for m in range(versions)]
        aliases = [f"{os_name}/{release}/{variant}"]
        if variant == "default":
            aliases.append(f"{os_name}/{release}")
        found[key] = {
            "aliases": ",".join(aliases), "arch": arch, "os": os_name, "release": release,
            "release_title": release.upper(), "variant": variant, "support_eol": "2030-04-30",
            "requirements": {"secureboot": "false"} if vm else {},
            "versions": {s: _version(key, s, vm) for s in serials},
        }
    return {"content_id": "images", "datatype": "image-downloads", "format": "products:1.0",
            "products": found}


def tricky(seed: int, products: int = 40) -> dict[str, Any]:
    """A small products document full of cases where the daemon's order decides."""
    rnd = random.Random(seed)
    found: dict[str, Any] = {}
    shared_fps = [_sha(f"{seed}:shared:{i}") for i in range(4)]
    for n in range(products):
        arch = rnd.choice(("amd64", "arm64", "x86_64", "vax", "amd64"))
        aliases = rnd.sample(["a", "b", "a/1", "c", "a/1/cloud", ""], rnd.randint(0, 3))
        product: dict[str, Any] = {
            "aliases": ",".join(aliases), "arch": arch,
            "os": rnd.choice(("alpha", "beta", "")), "release": rnd.choice(("1", "2")),
            "variant": rnd.choice(("default", "cloud", None)), "release_title": "t",
            "versions": {},
        }
        if rnd.random() < 0.3:
            product["support_eol"] = rnd.choice(("2030-01-31", "bad", "2030-02-30"))
        if rnd.random() < 0.3:
            product["requirements"] = {"secureboot": "false"}
        for v in range(rnd.randint(1, 4)):
            serial = rnd.choice(("20250101", "20250102_0000", "20250102_0000", "20241231",
                                 "latest", f"2025030{v + 1}_1200"))
            product["versions"][serial] = _tricky_version(rnd, f"{n}:{serial}", shared_fps)
        found[f"p{n}:{arch}"] = product
    return {"content_id": "images", "datatype": "image-downloads", "format": "products:1.0",
            "products": found}


def _tricky_version(rnd: random.Random, base: str, shared: list[str]) -> dict[str, Any]:
    def fp(label: str) -> str:
        return rnd.choice(shared) if rnd.random() < 0.15 else _sha(f"{base}:{label}")

    items: dict[str, Any] = {}
    if rnd.random() < 0.2:
        items["c"] = _file("incus_combined.tar.gz", f"{base}/c", rnd.randint(1, 9),
                           **({"combined_type": "virtual-machine"} if rnd.random() < 0.5
                              else {}))
        if rnd.random() < 0.3:
            items["c"]["sha256"] = rnd.choice(shared)
        return {"items": items}
    meta: dict[str, Any] = {}
    for ftype, fields in (("squashfs", ("combined_squashfs_sha256",)),
                          ("root.tar.xz", ("combined_rootxz_sha256", "combined_sha256")),
                          ("disk-kvm.img", ("combined_disk-kvm-img_sha256",)),
                          ("disk1.img", ("combined_disk1-img_sha256",)),
                          ("uefi1.img", ("combined_uefi1-img_sha256",))):
        if rnd.random() < 0.45:
            items[ftype] = _file(ftype, f"{base}/{ftype}", rnd.randint(1, 9))
            meta[rnd.choice(fields)] = "" if rnd.random() < 0.1 else fp(ftype)
    items["meta"] = _file("incus.tar.xz", f"{base}/meta", 1, **meta)
    if rnd.random() < 0.2:
        items["label"] = _file("squashfs.vcdiff", f"{base}/delta", 1)
    return {"items": items, **({"label": "rc"} if rnd.random() < 0.2 else {})}
