"""Tiny deterministic Incus images, built in pure Python (tarfile + lzma/gzip).

Same arguments, same bytes: every tar member has mtime = the build's creation
date, uid/gid 0, fixed modes, and the compressors get fixed settings.  Every
build differs from any other: ``etc/os-release`` holds os, release, variant,
arch and serial.

* :func:`build_split_image` -> metadata ``incus.tar.xz`` + rootfs.  Containers get a
  ``root.tar.xz`` that ``incus image import`` and a simplestreams pull accept.
  Virtual machines get a fake ``disk-kvm.img`` blob: fine for catalog and parser
  tests, but the daemon cannot import it (it is not a real qcow2 disk).
* :func:`build_unified_image` -> one ``incus_combined.tar.gz`` (container only) with
  ``metadata.yaml``, ``templates/`` and ``rootfs/``.

``payload`` (bytes) adds ``opt/payload.bin`` of random, incompressible bytes seeded by
the build's identity to a container rootfs: a real-size download, still deterministic.

``BuiltImage.fingerprint`` is what the daemon computes: ``sha256(metadata || rootfs)``
for split images, ``sha256(tarball)`` for unified ones.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import lzma
import random
import re
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from reconciler.model.arch import canonical

ImageKind = Literal["container", "virtual-machine"]

SPLIT_META_FTYPE = "incus.tar.xz"
UNIFIED_FTYPE = "incus_combined.tar.gz"
ROOTFS_FTYPES: dict[ImageKind, str] = {
    "container": "root.tar.xz",
    "virtual-machine": "disk-kvm.img",
}


@dataclass(frozen=True)
class BuiltImage:
    """One built image and the identity it was built for.

    ``arch`` is the name it was built with (``amd64``); ``metadata.yaml`` carries the
    canonical one (``x86_64``).  For unified images ``metadata`` is the whole
    ``incus_combined.tar.gz`` and ``rootfs`` is None.
    """

    os: str
    release: str
    serial: str
    arch: str
    variant: str
    type: ImageKind
    metadata: bytes
    rootfs: bytes | None
    rootfs_ftype: str | None
    fingerprint: str
    properties: Mapping[str, str] = field(default_factory=dict)

    @property
    def unified(self) -> bool:
        return self.rootfs is None

    @property
    def size(self) -> int:
        """Total bytes, as the index and the daemon report it."""
        return len(self.metadata) + len(self.rootfs or b"")

    @property
    def created_at(self) -> datetime:
        return serial_time(self.serial)


def serial_time(serial: str) -> datetime:
    """``YYYYMMDD[_]hhmm`` (time optional) as a UTC time."""
    match = re.match(r"^(\d{4})(\d{2})(\d{2})_?(\d{2})?(\d{2})?", serial)
    if not match:
        raise ValueError(f"serial {serial!r} does not start with YYYYMMDD")
    y, mo, d, h, mi = (int(g) if g else 0 for g in match.groups())
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def build_split_image(
    os_: str,
    release: str,
    serial: str,
    arch: str = "amd64",
    variant: str = "default",
    properties: Mapping[str, str] | None = None,
    requirements: Mapping[str, str] | None = None,
    type_: ImageKind = "container",
    payload: int = 0,
    rootfs: bytes | None = None,
) -> BuiltImage:
    """A metadata tarball plus a rootfs (``root.tar.xz``, or a fake ``disk-kvm.img`` for VMs).

    ``properties`` are merged over the generated ones (os, release, variant,
    architecture, description, serial); ``requirements`` become ``requirements.<k>``;
    ``payload`` bytes of random data make a container's rootfs that big; ``rootfs``
    (the bytes of a ``root.tar.xz``) replaces the built one.
    """
    props = _properties(os_, release, serial, arch, variant, properties, requirements)
    when = serial_time(serial)
    meta = _xz(_tar([("metadata.yaml", _metadata_yaml(arch, when, props)), ("templates/", None)],
                    when))
    if type_ == "container":
        tree = _root_tree(os_, release, serial, arch, variant)
        if payload:
            noise = random.Random(props["description"]).randbytes(payload)
            tree += [("opt/", None), ("opt/payload.bin", noise)]
        rootfs = rootfs if rootfs is not None else _xz(_tar(tree, when))
    else:
        # Not a real qcow2 disk: the daemon refuses it, parsers do not care.
        rootfs = b"QFI\xfb" + hashlib.sha256(props["description"].encode()).digest() * 4
    return BuiltImage(
        os=os_, release=release, serial=serial, arch=arch, variant=variant, type=type_,
        metadata=meta, rootfs=rootfs, rootfs_ftype=ROOTFS_FTYPES[type_],
        fingerprint=hashlib.sha256(meta + rootfs).hexdigest(), properties=props,
    )


def build_unified_image(
    os_: str,
    release: str,
    serial: str,
    arch: str = "amd64",
    variant: str = "default",
    properties: Mapping[str, str] | None = None,
    requirements: Mapping[str, str] | None = None,
) -> BuiltImage:
    """One ``incus_combined.tar.gz`` container image (metadata.yaml, templates/, rootfs/)."""
    props = _properties(os_, release, serial, arch, variant, properties, requirements)
    when = serial_time(serial)
    members: list[tuple[str, bytes | None]] = [
        ("metadata.yaml", _metadata_yaml(arch, when, props)), ("templates/", None),
        ("rootfs/", None),
    ]
    members += [(f"rootfs/{name}", data)
                for name, data in _root_tree(os_, release, serial, arch, variant)]
    tarball = gzip.compress(_tar(members, when), compresslevel=6, mtime=0)
    return BuiltImage(
        os=os_, release=release, serial=serial, arch=arch, variant=variant, type="container",
        metadata=tarball, rootfs=None, rootfs_ftype=None,
        fingerprint=hashlib.sha256(tarball).hexdigest(), properties=props,
    )


def _properties(
    os_: str, release: str, serial: str, arch: str, variant: str,
    extra: Mapping[str, str] | None, requirements: Mapping[str, str] | None,
) -> dict[str, str]:
    props = {
        "os": os_, "release": release, "variant": variant, "architecture": arch,
        "serial": serial, "description": f"{os_} {release} {arch} ({variant}) ({serial})",
    }
    props.update({f"requirements.{k}": v for k, v in (requirements or {}).items()})
    props.update(extra or {})
    return props


def _metadata_yaml(arch: str, when: datetime, props: Mapping[str, str]) -> bytes:
    # JSON strings are valid YAML double-quoted scalars: no YAML library needed.
    lines = [
        f"architecture: {json.dumps(canonical(arch) or arch)}",
        f"creation_date: {int(when.timestamp())}",
        "properties:",
        *(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in sorted(props.items())),
        "templates: {}",
    ]
    return ("\n".join(lines) + "\n").encode()


def _root_tree(
    os_: str, release: str, serial: str, arch: str, variant: str
) -> list[tuple[str, bytes | None]]:
    os_release = (f'ID={os_.lower()}\nVERSION_ID="{release}"\nVARIANT_ID={variant}\n'
                  f"ARCH={arch}\nBUILD_ID={serial}\n").encode()
    return [("bin/", None), ("dev/", None), ("etc/", None), ("etc/os-release", os_release),
            ("etc/hostname", f"{os_.lower()}\n".encode()), ("root/", None), ("tmp/", None)]


def _tar(members: list[tuple[str, bytes | None]], when: datetime) -> bytes:
    """A ustar archive; a name ending in ``/`` with data None is a directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mtime = int(when.timestamp())
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o1777 if name == "tmp/" else 0o755
                tar.addfile(info)
            else:
                info.mode = 0o644
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _xz(data: bytes) -> bytes:
    return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=6)
