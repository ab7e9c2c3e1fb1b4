"""A simplestreams catalog read lazily: the alias table from the raw documents, builds on use.

A public products file lists ~26,000 builds; a run uses a handful.  So the
documents (as ``json`` parsed them) are kept, one pass over them makes the alias
table and a fingerprint index, and a :class:`~reconciler.model.remote.RemoteImage`
is made only when the planner asks for its fingerprint.

Invariants (the same answers as reading every build, see
:mod:`reconciler.adapters.remotes.simplestreams`):

* Order: a candidate build ranks by (os, release, variant) ascending, serial
  descending, then raw arch, rootfs preference, fingerprint and position in the
  documents ascending: the daemon's order, ties broken as the eager reader breaks
  them.  An alias key goes to the first claim in that order, a claim being
  (candidate, position of the alias in the product's list, short before long);
  a fingerprint listed twice is the build of its first candidate.
* Within a product every candidate shares (os, release, variant, arch, aliases),
  so only each product's first candidate per image type can claim an alias key.
* The pass checks everything the alias table depends on (the documents' and
  products' shape, product fields, versions, items and their ``ftype``, every
  fingerprint), failing as the eager reader does.  A build's own files and the
  rest of its product are checked when the build is first made: the whole
  product is read then, so garbage in a product that is used fails, and garbage
  in a product no entry uses is never read.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, NoReturn

from reconciler.adapters.remotes.simplestreams import (
    COMBINED_FTYPE,
    META_FTYPE,
    ROOTFS_FTYPES,
    ROOTFS_PREFERENCE,
    SHA256,
    STR_PRODUCT_KEYS,
    Candidate,
    ProductsReader,
    daemon_order,
    version_date,
)
from reconciler.model.arch import canonical
from reconciler.model.desired import ImageType
from reconciler.model.remote import RemoteImage

_SCORE = {ftype: n for n, ftype in enumerate(ROOTFS_PREFERENCE)}


Rank = tuple[tuple[str, str, str], str, str, int, str, int]
"""Where a candidate build stands in the daemon's order: ((os, release, variant), serial,
raw arch, rootfs score, fingerprint, position in the documents).  A plain tuple: one is
made per build of the index."""

_Fail = Callable[[str, str], NoReturn]
"""Reports garbage at a spot of a product: raises RemoteError."""


def earlier(a: Rank, b: Rank) -> bool:
    """Whether ``a`` comes before ``b`` in the daemon's order (serial descending)."""
    if a[0] != b[0]:
        return a[0] < b[0]
    if a[1] != b[1]:
        return a[1] > b[1]
    return a[2:] < b[2:]


class Claim(NamedTuple):
    """A candidate's claim on an alias key: the candidate, the alias's position, 0 short/1 long."""

    rank: Rank
    position: int
    form: int


def claim_earlier(a: Claim, b: Claim) -> bool:
    if a.rank != b.rank:
        return earlier(a.rank, b.rank)
    return (a.position, a.form) < (b.position, b.form)


def _claim_cmp(a: tuple[Claim, str], b: tuple[Claim, str]) -> int:
    """Orders (claim, key) pairs by claim."""
    return -1 if claim_earlier(a[0], b[0]) else (1 if claim_earlier(b[0], a[0]) else 0)


class _Product(NamedTuple):
    """A product as the documents hold it: which document, its key, its raw object."""

    doc: int
    key: str
    raw: dict[str, object]


class LazyProducts:
    """The :class:`~reconciler.model.remote.ImageSource` of a simplestreams catalog.

    ``alias_table`` is complete once constructed; :meth:`image` makes one build
    (reading its product fully, once), :meth:`all_images` every build.
    """

    def __init__(self, remote: str, docs: Sequence[object], sources: Sequence[str],
                 host_arch: str | None) -> None:
        self._remote = remote
        self._docs = docs
        self._sources = sources
        self._native = canonical(host_arch) if host_arch else None
        self.alias_table: dict[str, str] = {}
        self._claims: dict[str, Claim] = {}
        self._first: dict[str, tuple[Rank, _Product]] = {}
        self._read: dict[tuple[int, str], list[Candidate]] = {}
        self._won: dict[str, list[tuple[Claim, str]]] | None = None
        self._seq = 0
        self._dates: dict[str, bool] = {}
        for number, doc in enumerate(docs):
            reader = ProductsReader(remote, sources[number])
            top = reader.obj(doc, "", "the document")
            products = reader.obj(top.get("products"), "", "'products'")
            for key, raw in products.items():
                self._scan(reader, _Product(number, key, reader.obj(
                    raw, f"product {key!r}", "the product")))

    # --- the one pass ------------------------------------------------------------------

    def _scan(self, reader: ProductsReader, product: _Product) -> None:
        """Rank a product's candidates; its first per type claims its alias keys."""
        raw, where = product.raw, f"product {product.key!r}"

        reader.strings(raw, STR_PRODUCT_KEYS, where)
        raw_arch = raw.get("arch")
        if not isinstance(raw_arch, str) or not raw_arch:
            reader.fail(where, "has no 'arch'")
        versions = reader.obj(raw.get("versions"), where, "'versions'")
        requirements = raw.get("requirements") or {}
        if not isinstance(requirements, dict) or not all(
                isinstance(v, str) for v in requirements.values()):
            reader.fail(where, "'requirements' is not a map of strings")
        arch = canonical(raw_arch)
        if arch is None:
            return  # the daemon skips it; nothing can use it
        group = (_text(raw, "os"), _text(raw, "release"), _text(raw, "variant"))
        try:
            best = self._rank(product, group, raw_arch, versions)
        except (_Garbage, AttributeError, TypeError, KeyError):
            reader.product(raw, where)  # words the problem as the full read does
            reader.fail(where, "is not a product the daemon can read")
        aliases = [a for a in _text(raw, "aliases").split(",") if a]
        for type_, rank in best.items():
            self._claim(aliases, raw_arch, f"|{type_}|{arch}", rank)

    def _rank(self, product: _Product, group: tuple[str, str, str], raw_arch: str,
              versions: dict[str, Any]) -> dict[ImageType, Rank]:
        """Index every build of a product by fingerprint; its first build per type.

        The hot loop of the pass (once per build of the index): within a product
        only serial, score, fingerprint and position differ, so ranks compare inline."""
        best: dict[ImageType, Rank] = {}
        first, dates, seq = self._first, self._dates, self._seq
        for serial, version in versions.items():
            dated = dates.get(serial)
            if dated is None:
                dated = dates[serial] = version_date(serial) is not None
            if not dated:
                continue  # the daemon skips it
            for fp, type_, score in _builds(version):
                rank = (group, serial, raw_arch, score, fp, seq)
                seq += 1
                held = best.get(type_)
                if held is None or (serial > held[1] if serial != held[1]
                                    else rank[3:] < held[3:]):
                    best[type_] = rank
                if fp not in first or earlier(rank, first[fp][0]):
                    first[fp] = (rank, product)
        self._seq = seq
        return best

    def _claim(self, aliases: list[str], raw_arch: str, suffix: str, rank: Rank) -> None:
        for position, alias in enumerate(aliases):
            for form, name in ((0, alias), (1, f"{alias}/{raw_arch}")):
                key = name + suffix
                claim = Claim(rank, position, form)
                held = self._claims.get(key)
                if held is None or claim_earlier(claim, held):
                    self._claims[key] = claim
                    self.alias_table[key] = rank[4]

    # --- builds, on use --------------------------------------------------------------------

    def image(self, fingerprint: str) -> RemoteImage | None:
        """The build ``fingerprint`` names (its first candidate), or None."""
        first = self._first.get(fingerprint)
        if first is None:
            return None
        same = [c for c in self._candidates(first[1]) if c.image.fingerprint == fingerprint]
        build = daemon_order(same)[0].image
        return build.model_copy(update={"aliases": self._aliases(fingerprint)})

    def all_images(self) -> tuple[RemoteImage, ...]:
        """Every build in the daemon's order, each product read fully (as the eager reader)."""
        every: list[Candidate] = []
        for number, doc in enumerate(self._docs):
            every.extend(ProductsReader(self._remote, self._sources[number]).read(doc))
        images: dict[str, RemoteImage] = {}
        for cand in daemon_order(every):
            fp = cand.image.fingerprint
            if fp not in images:
                images[fp] = cand.image.model_copy(update={"aliases": self._aliases(fp)})
        return tuple(images.values())

    def _candidates(self, product: _Product) -> list[Candidate]:
        key = (product.doc, product.key)
        if key not in self._read:
            reader = ProductsReader(self._remote, self._sources[product.doc])
            self._read[key] = reader.product(product.raw, f"product {product.key!r}")
        return self._read[key]

    def _aliases(self, fingerprint: str) -> tuple[str, ...]:
        """The alias names a build won, as the daemon lists them: in claim order, short
        names only on the host's architecture (any, without a host architecture)."""
        if self._won is None:
            self._won = {}
            for key, claim in self._claims.items():
                self._won.setdefault(claim.rank[4], []).append((claim, key))
        names: list[str] = []
        won = sorted(self._won.get(fingerprint, ()), key=functools.cmp_to_key(_claim_cmp))
        for claim, key in won:
            name, _type, arch = key.rsplit("|", 2)
            listed = claim.form == 1 or self._native is None or self._native == arch
            if listed and name not in names:
                names.append(name)
        return tuple(names)


class _Garbage(Exception):
    """A fingerprint the pass cannot believe (the full read of the product words it)."""


_ROOTS = {ftype: (fields, type_, _SCORE[ftype]) for ftype, (fields, type_) in ROOTFS_FTYPES.items()}


def _builds(version: dict[str, Any]) -> list[tuple[str, ImageType, int]]:
    """(fingerprint, type, rootfs score) of each build of one version, in item order.

    The hot loop of the pass (once per version of the index), so it trusts the shape
    and lets a wrong one raise (AttributeError, TypeError, KeyError): the caller then
    reads the product fully, which names the problem.  It checks what it returns."""
    roots: list[tuple[tuple[str, ...], ImageType, int]] = []
    makers: list[dict[str, Any]] = []
    for item in version["items"].values():
        ftype = item["ftype"]
        if ftype in (META_FTYPE, COMBINED_FTYPE):
            makers.append(item)
        elif (rule := _ROOTS.get(ftype)) is not None:
            roots.append(rule)
    found: list[tuple[str, ImageType, int]] = []
    for item in makers:
        if item["ftype"] == COMBINED_FTYPE:
            sha = item["sha256"]
            if not SHA256.match(sha) or not item["path"] or item["size"].__class__ is not int:
                raise _Garbage
            vm = item.get("combined_type") == "virtual-machine"
            found.append((sha, "virtual-machine" if vm else "container", 0))
            continue
        for fields, type_, score in roots:
            for field in fields:
                if fp := item.get(field):
                    if not SHA256.match(fp):
                        raise _Garbage
                    found.append((fp, type_, score))
                    break
    return found


def _text(product: Mapping[str, object], key: str) -> str:
    value = product.get(key)
    return value if isinstance(value, str) else ""
