"""Simplestreams, read exactly as the Incus daemon reads it.

Pure functions: the adapter fetches ``streams/v1/index.json`` and the products
files it lists, this module turns them into a :class:`RemoteCatalog`.

Invariants (they mirror ``shared/simplestreams`` in lxc/incus):

* An image is either a metadata item (ftype ``incus.tar.xz``) paired with one
  rootfs item of the same version (``squashfs``, ``root.tar.xz``,
  ``disk-kvm.img``, ``disk1.img``, ``uefi1.img``), fingerprinted by the
  metadata item's ``combined_*_sha256`` field for that rootfs, or one
  ``incus_combined.tar.gz`` item, fingerprinted by its own ``sha256``.
  Every other ftype (``lxd.tar.xz``, deltas, manifests) is ignored.
* Silently skipped, like the daemon does: products whose ``arch`` Incus does not
  know, versions whose key does not start with a ``YYYYMMDD`` date, pairings
  whose fingerprint field is empty.
* ``files`` are in upload order (metadata first); ``sha256(b"".join(files))`` is
  the fingerprint; ``size`` is the sum of the file sizes.
* Alias table: every image sorted (os, release, variant ascending; serial
  descending; raw arch; rootfs preference), then each alias ``a`` of the product
  registers ``a`` and ``a/<raw arch>`` for (image type, canonical arch); the
  first image to claim a key keeps it, so the newest build wins.
* Garbage (wrong shape, missing or mistyped keys, a hash that is not 64 hex
  digits) raises :class:`RemoteError` naming the remote and where it is: what
  the alias table depends on when the catalog is built, the rest of a product
  when one of its builds is first used (:mod:`reconciler.adapters.remotes.sslazy`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NoReturn, cast

from reconciler.errors import RemoteError
from reconciler.model.arch import canonical
from reconciler.model.config import RemoteSpec
from reconciler.model.desired import ImageType
from reconciler.model.remote import RemoteCatalog, RemoteFile, RemoteImage
from reconciler.redact import without_userinfo

INDEX_PATH = "streams/v1/index.json"
MAX_SIZE = 1 << 40
"""Largest file or image size believed from a remote (1 TiB): beyond, the index is garbage."""


def size_problem(size: object) -> str | None:
    """Why a remote's ``size`` cannot be an image's size in bytes, or None."""
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return f"'size' is not a non-negative integer ({type(size).__name__})"
    if size > MAX_SIZE:
        return f"'size' is {size} bytes, more than 1 TiB"
    return None

META_FTYPE = "incus.tar.xz"
COMBINED_FTYPE = "incus_combined.tar.gz"

# rootfs ftype -> (fingerprint fields on the metadata item, first non-empty wins; image type)
ROOTFS_FTYPES: dict[str, tuple[tuple[str, ...], ImageType]] = {
    "squashfs": (("combined_squashfs_sha256",), "container"),
    "root.tar.xz": (("combined_rootxz_sha256", "combined_sha256"), "container"),
    "disk-kvm.img": (("combined_disk-kvm-img_sha256",), "virtual-machine"),
    "disk1.img": (("combined_disk1-img_sha256",), "virtual-machine"),
    "uefi1.img": (("combined_uefi1-img_sha256",), "virtual-machine"),
}

# The daemon's preference when one version offers several rootfs types; any other
# type (``tar.gz`` for combined images) scores like the first one.
ROOTFS_PREFERENCE = ("squashfs", "root.tar.xz", "disk-kvm.img", "uefi1.img", "disk1.img")

SHA256 = re.compile(r"^[0-9a-f]{64}$")
_VERSION_DATE = re.compile(r"^([0-9]{4})([0-9]{2})([0-9]{2})")
_EOL = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})$")
_STR_ITEM_KEYS = ("ftype", "path", "sha256", "combined_sha256", "combined_rootxz_sha256",
                  "combined_squashfs_sha256", "combined_disk-kvm-img_sha256",
                  "combined_disk1-img_sha256", "combined_uefi1-img_sha256", "combined_type")
STR_PRODUCT_KEYS = ("aliases", "arch", "os", "release", "release_title", "version",
                     "variant", "support_eol")


def parse_index(data: object, *, remote: str = "<unnamed>") -> list[str]:
    """The products file paths an index lists, in index order, without duplicates.

    Only entries with ``datatype == "image-downloads"`` and a non-empty
    ``products`` list count (the daemon's rule); paths are relative to the
    remote's base URL.  Raises :class:`RemoteError` if ``data`` is not an index.
    """

    def fail(what: str) -> NoReturn:
        raise RemoteError(remote, f"{INDEX_PATH}: {what}")

    if not isinstance(data, dict):
        fail("not a JSON object")
    index = data.get("index")
    if not isinstance(index, dict):
        fail("has no 'index' object")
    paths: list[str] = []
    for key, entry in index.items():
        if not isinstance(entry, dict):
            fail(f"index entry {key!r} is not an object")
        if entry.get("datatype") != "image-downloads":
            continue
        products = entry.get("products")
        if products is None:
            continue
        if not isinstance(products, list):
            fail(f"index entry {key!r}: 'products' is not a list")
        if not products:
            continue
        path = entry.get("path")
        if not isinstance(path, str) or not path:
            fail(f"index entry {key!r} has no 'path'")
        if path not in paths:
            paths.append(path)
    return paths


def build_catalog(
    remote: RemoteSpec,
    products_docs: Sequence[object],
    host_arch: str | None = None,
    *,
    paths: Sequence[str] = (),
) -> RemoteCatalog:
    """Every image the products documents describe, with the daemon's alias table.

    ``paths`` (parallel to ``products_docs``) only labels error messages.
    ``host_arch`` only filters :attr:`reconciler.model.remote.RemoteImage.aliases`
    the way the daemon lists them (short names only on the host's architecture);
    the alias table always holds short and long names for every architecture.

    The catalog is lazy (:mod:`reconciler.adapters.remotes.sslazy`): the alias
    table is built here, in one pass over the raw documents, and a build is made
    (and its whole product checked) when it is first asked for.
    """
    from reconciler.adapters.remotes.sslazy import LazyProducts

    sources = [paths[n] if n < len(paths) else f"products file #{n + 1}"
               for n in range(len(products_docs))]
    lazy = LazyProducts(remote.name, products_docs, sources, host_arch)
    return RemoteCatalog(
        remote=remote.name,
        url=without_userinfo(remote.url),
        protocol="simplestreams",
        alias_table=lazy.alias_table,
        source=lazy,
    )


@dataclass(frozen=True)
class Candidate:
    """One image before alias assignment, with what the daemon sorts it by."""

    image: RemoteImage
    raw_arch: str
    alias_names: tuple[str, ...]
    sort_props: Mapping[str, str] = field(default_factory=dict)


def daemon_order(candidates: list[Candidate]) -> list[Candidate]:
    """The daemon's image order: os, release, variant asc; serial desc; arch; rootfs type.

    Multi-pass stable sort, least significant key first; ties (which the daemon
    leaves to Go's map order) are broken by fingerprint for determinism.
    """

    def type_score(c: Candidate) -> int:
        ftype = c.image.properties.get("type", "")
        return ROOTFS_PREFERENCE.index(ftype) if ftype in ROOTFS_PREFERENCE else 0

    ordered = sorted(candidates, key=lambda c: c.image.fingerprint)
    ordered.sort(key=type_score)
    ordered.sort(key=lambda c: c.sort_props.get("architecture", ""))
    ordered.sort(key=lambda c: c.sort_props.get("serial", ""), reverse=True)
    ordered.sort(key=lambda c: tuple(c.sort_props.get(k, "") for k in ("os", "release", "variant")))
    return ordered


class ProductsReader:
    """Reads one products document; every failure names the file and the spot."""

    def __init__(self, remote: str, source: str) -> None:
        self.remote = remote
        self.source = source

    def fail(self, where: str, what: str) -> NoReturn:
        location = f"{self.source}: {where}" if where else self.source
        raise RemoteError(self.remote, f"{location}: {what}")

    def obj(self, value: object, where: str, what: str) -> dict[str, object]:
        if not isinstance(value, dict):
            self.fail(where, f"{what} is not an object")
        return value

    def strings(self, value: dict[str, object], keys: Sequence[str], where: str) -> None:
        for key in keys:
            if key in value and value[key] is not None and not isinstance(value[key], str):
                self.fail(where, f"{key!r} is not a string")

    def read(self, doc: object) -> list[Candidate]:
        top = self.obj(doc, "", "the document")
        products = self.obj(top.get("products"), "", "'products'")
        found: list[Candidate] = []
        for key, raw in products.items():
            where = f"product {key!r}"
            product = self.obj(raw, where, "the product")
            found.extend(self.product(product, where))
        return found

    def product_fields(self, product: dict[str, object], where: str
                       ) -> tuple[str, dict[str, object], dict[str, str]]:
        """Check a product's own fields (not its versions): its ``arch``, its
        ``versions`` map and its ``requirements``."""
        self.strings(product, STR_PRODUCT_KEYS, where)
        raw_arch = product.get("arch")
        if not isinstance(raw_arch, str) or not raw_arch:
            self.fail(where, "has no 'arch'")
        versions = self.obj(product.get("versions"), where, "'versions'")
        requirements = product.get("requirements") or {}
        if not isinstance(requirements, dict) or not all(
            isinstance(v, str) for v in requirements.values()
        ):
            self.fail(where, "'requirements' is not a map of strings")
        return raw_arch, versions, cast(dict[str, str], requirements)

    def product(self, product: dict[str, object], where: str) -> list[Candidate]:
        raw_arch, versions, requirements = self.product_fields(product, where)
        found: list[Candidate] = []
        for serial, raw_version in versions.items():
            vwhere = f"{where} version {serial!r}"
            version = self.obj(raw_version, vwhere, "the version")
            items = self.obj(version.get("items"), vwhere, "'items'")
            label = version.get("label") or ""
            if not isinstance(label, str):
                self.fail(vwhere, "'label' is not a string")
            checked = {
                name: self.item(self.obj(item, f"{vwhere} item {name!r}", "the item"),
                                f"{vwhere} item {name!r}")
                for name, item in items.items()
            }
            arch = canonical(raw_arch)
            created = version_date(serial)
            if arch is None or created is None:
                continue  # the daemon skips these silently
            context = VersionContext(product, raw_arch, arch, serial, created, label,
                                      dict(requirements))
            found.extend(self.version_images(context, checked, vwhere))
        return found

    def item(self, item: dict[str, object], where: str) -> dict[str, object]:
        self.strings(item, _STR_ITEM_KEYS, where)
        if not isinstance(item.get("ftype"), str):
            self.fail(where, "has no 'ftype'")
        size = item.get("size")
        if size is not None and (problem := size_problem(size)):
            self.fail(where, problem)
        return item

    def file_sha256(self, item: dict[str, object], where: str) -> str:
        """The sha256 of a file item, once its path, sha256 and size are checked."""
        path, sha, size = item.get("path"), item.get("sha256"), item.get("size")
        if not isinstance(path, str) or not path:
            self.fail(where, "has no 'path'")
        if not isinstance(sha, str) or not SHA256.match(sha):
            self.fail(where, "'sha256' is not 64 lowercase hex digits")
        if not isinstance(size, int):
            self.fail(where, "has no 'size'")
        return sha

    def file(self, item: dict[str, object], where: str) -> RemoteFile:
        sha = self.file_sha256(item, where)
        path, size = item["path"], item["size"]
        assert isinstance(path, str) and isinstance(size, int)  # file_sha256 checked them
        return RemoteFile(ftype=str(item["ftype"]), path=path, sha256=sha, size=size)

    def version_images(
        self, ctx: VersionContext, items: dict[str, dict[str, object]], where: str
    ) -> list[Candidate]:
        found: list[Candidate] = []
        for name, item in items.items():
            iwhere = f"{where} item {name!r}"
            ftype = item["ftype"]
            if ftype == COMBINED_FTYPE:
                combined = self.file(item, iwhere)
                vm = item.get("combined_type") == "virtual-machine"
                found.append(ctx.candidate(combined.sha256, "virtual-machine" if vm else
                                           "container", "tar.gz", (combined,)))
            elif ftype == META_FTYPE:
                for root_name, root in items.items():
                    rule = ROOTFS_FTYPES.get(str(root["ftype"]))
                    if rule is None:
                        continue
                    fields, type_ = rule
                    fp = next((str(item[f]) for f in fields if item.get(f)), "")
                    if not fp:
                        continue  # no fingerprint for this pairing: the daemon skips it
                    if not SHA256.match(fp):
                        self.fail(iwhere, f"{fields[0]!r} is not 64 lowercase hex digits")
                    meta = self.file(item, iwhere)
                    rootfs = self.file(root, f"{where} item {root_name!r}")
                    found.append(ctx.candidate(fp, type_, rootfs.ftype, (meta, rootfs)))
        return found


@dataclass(frozen=True)
class VersionContext:
    """What every image of one product version shares."""

    product: dict[str, object]
    raw_arch: str
    arch: str
    serial: str
    created: datetime
    label: str
    requirements: dict[str, str]

    def text(self, key: str) -> str:
        value = self.product.get(key)
        return value if isinstance(value, str) else ""

    def candidate(
        self, fingerprint: str, type_: ImageType, type_prop: str, files: tuple[RemoteFile, ...]
    ) -> Candidate:
        variant = self.text("variant")
        # Incus 6.0.4 (verified) writes no variant into the description, whatever
        # the reference's section 4.3 says about newer snapshots.
        description = f"{self.text('os')} {self.text('release_title')} {self.raw_arch}"
        if self.label:
            description += f" ({self.label})"
        description += f" ({self.serial})"
        props = {
            "os": self.text("os"),
            "release": self.text("release"),
            "version": self.text("version"),
            "architecture": self.raw_arch,
            "label": self.label,
            "serial": self.serial,
            "description": description,
            "variant": variant,
            "type": type_prop,
        }
        props.update({f"requirements.{k}": v for k, v in self.requirements.items()})
        props = {k: v for k, v in props.items() if v}
        image = RemoteImage(
            fingerprint=fingerprint,
            type=type_,
            architecture=self.arch,
            remote_architecture=self.raw_arch,
            version=self.serial,
            created_at=self.created,
            size=sum(f.size for f in files),
            files=files,
            requirements=dict(self.requirements),
            properties=props,
            expires_at=_eol(self.text("support_eol")),
        )
        aliases = tuple(a for a in self.text("aliases").split(",") if a)
        return Candidate(image=image, raw_arch=self.raw_arch, alias_names=aliases,
                          sort_props=props)


def version_date(serial: str) -> datetime | None:
    """UTC midnight of the ``YYYYMMDD`` a version key starts with, or None."""
    return _utc_midnight(_VERSION_DATE.match(serial))


def _eol(value: str) -> datetime | None:
    """``support_eol`` (``YYYY-MM-DD``) as UTC midnight; anything else means no expiry."""
    return _utc_midnight(_EOL.match(value))


def _utc_midnight(match: re.Match[str] | None) -> datetime | None:
    """The date of a (year, month, day) match at 00:00 UTC; None when absent or invalid."""
    if not match:
        return None
    try:
        return datetime(int(match[1]), int(match[2]), int(match[3]), tzinfo=UTC)
    except ValueError:
        return None
