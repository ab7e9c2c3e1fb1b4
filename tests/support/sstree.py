"""A simplestreams tree on disk, laid out exactly as the Incus daemon reads it.

``SimpleStreamsTree(root)`` keeps ``root/streams/v1/index.json``,
``root/streams/v1/images.json`` and ``root/images/<sha256>.<ftype>`` in step with
the versions added so far (see docs: real-incus-in-tests.md section 3):

* product key ``os:release:arch:variant``; ``aliases`` is the comma-joined alias list;
* version key = the serial (``YYYYMMDD_hhmm``);
* a split container version has items ``incus.tar.xz`` (with ``combined_rootxz_sha256``
  and ``combined_sha256``) and ``root.tar.xz``; a VM adds ``disk-kvm.img`` and
  ``combined_disk-kvm-img_sha256`` (the metadata item is shared when its bytes are
  the same); a unified image is one ``incus_combined.tar.gz`` item.

Every change rewrites both JSON files atomically (safe while a server reads them)
and deletes image files nothing refers to any more.  Not thread-safe.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.images import (
    SPLIT_META_FTYPE,
    UNIFIED_FTYPE,
    BuiltImage,
    ImageKind,
    build_split_image,
    build_unified_image,
)

INDEX = "streams/v1/index.json"
PRODUCTS = "streams/v1/images.json"

_COMBINED_FIELDS = {
    "root.tar.xz": ("combined_rootxz_sha256", "combined_sha256"),
    "disk-kvm.img": ("combined_disk-kvm-img_sha256",),
}


@dataclass
class _Product:
    os: str
    release: str
    arch: str
    variant: str
    aliases: tuple[str, ...] = ()
    requirements: dict[str, str] = field(default_factory=dict)
    support_eol: str | None = None
    versions: dict[str, list[BuiltImage]] = field(default_factory=dict)


class SimpleStreamsTree:
    """A served-from-disk simplestreams remote that tests change between runs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._products: dict[str, _Product] = {}
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "streams" / "v1").mkdir(parents=True, exist_ok=True)
        self._write()

    # --- changing the tree --------------------------------------------------------------

    def add(
        self,
        os_: str,
        release: str,
        serial: str,
        arch: str = "amd64",
        aliases: Sequence[str] | None = None,
        requirements: Mapping[str, str] | None = None,
        support_eol: str | None = None,
        variant: str = "default",
        *,
        type_: ImageKind = "container",
        unified: bool = False,
        properties: Mapping[str, str] | None = None,
        payload: int = 0,
        rootfs: bytes | None = None,
    ) -> BuiltImage:
        """Build and publish one version; return the built image.

        ``aliases`` default to ``("<os>/<release>",)``; they, ``requirements`` and
        ``support_eol`` (``YYYY-MM-DD``) are product-wide, so the latest ``add`` of a
        product sets them for all its versions.  Adding the same (product, serial,
        type, unified) again replaces that image.  ``payload`` adds that many random
        bytes to a split container's rootfs, ``rootfs`` replaces it (see
        ``build_split_image``).
        """
        if unified:
            if type_ != "container" or payload:
                raise ValueError("unified images are built for containers only, no payload")
            image = build_unified_image(os_, release, serial, arch, variant, properties,
                                        requirements)
        else:
            image = build_split_image(os_, release, serial, arch, variant, properties,
                                      requirements, type_, payload, rootfs)
        key = f"{os_}:{release}:{arch}:{variant}"
        product = self._products.setdefault(key, _Product(os_, release, arch, variant))
        product.aliases = tuple(aliases) if aliases is not None else (f"{os_}/{release}",)
        product.requirements = dict(requirements or {})
        product.support_eol = support_eol
        builds = product.versions.setdefault(serial, [])
        builds[:] = [b for b in builds if (b.type, b.unified) != (image.type, image.unified)]
        builds.append(image)
        for path, data in self._files(image):
            _write_atomic(self.root / path, data)
        self._write()
        return image

    def remove_version(
        self, os_: str, release: str, serial: str, arch: str = "amd64", variant: str = "default"
    ) -> None:
        """Unpublish one version (every image of it); KeyError if it is not there."""
        key = f"{os_}:{release}:{arch}:{variant}"
        del self._products[key].versions[serial]
        if not self._products[key].versions:
            del self._products[key]
        self._write()

    def corrupt(self, fingerprint: str) -> Path:
        """Overwrite the image's rootfs (or unified tarball) with garbage of the same size.

        The index still announces the old sha256, so a download fails its check.
        Returns the corrupted file's path.
        """
        image = self.image(fingerprint)
        path = self.root / self._files(image)[-1][0]
        data = path.read_bytes()
        path.write_bytes(bytes(b ^ 0xFF for b in data))
        return path

    # --- reading it back ------------------------------------------------------------------

    @property
    def images(self) -> list[BuiltImage]:
        """Every published image, in product then version order."""
        return [b for p in self._products.values() for bs in p.versions.values() for b in bs]

    def image(self, fingerprint: str) -> BuiltImage:
        for built in self.images:
            if built.fingerprint == fingerprint:
                return built
        raise KeyError(fingerprint)

    def file_paths(self, fingerprint: str) -> list[str]:
        """The image's file paths relative to the root, in upload order (metadata first)."""
        return [path for path, _ in self._files(self.image(fingerprint))]

    def products_doc(self) -> dict[str, Any]:
        """``streams/v1/images.json`` as a dict."""
        products: dict[str, Any] = {}
        for key, product in self._products.items():
            doc: dict[str, Any] = {
                "aliases": ",".join(product.aliases),
                "arch": product.arch,
                "os": product.os,
                "release": product.release,
                "release_title": product.release,
                "variant": product.variant,
                "versions": {serial: {"items": self._items(builds)}
                             for serial, builds in product.versions.items()},
            }
            if product.requirements:
                doc["requirements"] = dict(product.requirements)
            if product.support_eol:
                doc["support_eol"] = product.support_eol
            products[key] = doc
        return {"content_id": "images", "datatype": "image-downloads",
                "format": "products:1.0", "products": products}

    def index_doc(self) -> dict[str, Any]:
        """``streams/v1/index.json`` as a dict."""
        return {"format": "index:1.0", "index": {"images": {
            "datatype": "image-downloads", "path": PRODUCTS, "format": "products:1.0",
            "products": sorted(self._products)}}}

    # --- internals ------------------------------------------------------------------------

    @staticmethod
    def _files(image: BuiltImage) -> list[tuple[str, bytes]]:
        meta_sha = _sha(image.metadata)
        if image.rootfs is None:
            return [(f"images/{meta_sha}.{UNIFIED_FTYPE}", image.metadata)]
        return [(f"images/{meta_sha}.{SPLIT_META_FTYPE}", image.metadata),
                (f"images/{_sha(image.rootfs)}.{image.rootfs_ftype}", image.rootfs)]

    def _items(self, builds: list[BuiltImage]) -> dict[str, Any]:
        items: dict[str, Any] = {}
        for image in builds:
            files = self._files(image)
            if image.rootfs is None:
                path, data = files[0]
                items[UNIFIED_FTYPE] = _item(UNIFIED_FTYPE, path, data)
                continue
            (meta_path, meta), (root_path, root) = files
            meta_key = next((k for k, v in items.items()
                             if v["ftype"] == SPLIT_META_FTYPE and v["sha256"] == _sha(meta)),
                            None)
            if meta_key is None:
                meta_key = SPLIT_META_FTYPE if SPLIT_META_FTYPE not in items else \
                    f"{SPLIT_META_FTYPE}.{len(items)}"
                items[meta_key] = _item(SPLIT_META_FTYPE, meta_path, meta)
            assert image.rootfs_ftype is not None
            for name in _COMBINED_FIELDS[image.rootfs_ftype]:
                items[meta_key][name] = image.fingerprint
            items[image.rootfs_ftype] = _item(image.rootfs_ftype, root_path, root)
        return items

    def _write(self) -> None:
        referenced = {path for built in self.images for path, _ in self._files(built)}
        for existing in (self.root / "images").iterdir():
            if f"images/{existing.name}" not in referenced:
                existing.unlink()
        for path, doc in ((PRODUCTS, self.products_doc()), (INDEX, self.index_doc())):
            _write_atomic(self.root / path, json.dumps(doc, indent=1, sort_keys=True).encode())


def _item(ftype: str, path: str, data: bytes) -> dict[str, Any]:
    return {"ftype": ftype, "path": path, "sha256": _sha(data), "size": len(data)}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
