"""A simplestreams catalog read lazily: the alias table from the raw documents, builds on use.

A public products file lists ~26,000 builds; a run uses a handful.  So the
documents (as ``json`` parsed them) are kept; one pass over them indexes products
by alias name and builds by fingerprint; an alias key is resolved when it is first
looked up (ranking only the products that claim its name), and a
:class:`~reconciler.model.remote.RemoteImage` is made only when the planner asks
for its fingerprint.

Invariants (the same answers as reading every build, see
:mod:`reconciler.adapters.remotes.simplestreams`):

* Order: a candidate build ranks by (os, release, variant) ascending, serial
  descending, then raw arch, rootfs preference, fingerprint and position in the
  documents ascending: the daemon's order, ties broken as the eager reader breaks
  them.  An alias key goes to the first claim in that order, a claim being
  (candidate, position of the alias in the product's list, short before long);
  a fingerprint listed twice is the build of its first candidate.
* Within a product every candidate shares (os, release, variant, arch, aliases),
  so only each product's first candidate per image type can claim an alias key:
  a key is resolved by ranking only the products whose alias list names it.
* The pass checks everything the alias table depends on (the documents' and
  products' shape, product fields, versions, items and their ``ftype``, every
  fingerprint), failing as the eager reader does.  A build's own files and the
  rest of its product are checked when the build is first made: the whole
  product is read then, so garbage in a product that is used fails, and garbage
  in a product no entry uses is never read.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, NoReturn

from reconciler.adapters.remotes.simplestreams import (
    COMBINED_FTYPE,
    META_FTYPE,
    ROOTFS_FTYPES,
    ROOTFS_PREFERENCE,
    SHA256,
    Candidate,
    ProductsReader,
    daemon_order,
    version_date,
)
from reconciler.model.arch import canonical
from reconciler.model.desired import ImageType
from reconciler.model.remote import RemoteImage

_SCORE = {ftype: n for n, ftype in enumerate(ROOTFS_PREFERENCE)}


Rank = tuple[tuple[str, str, str], str, str, int, str, tuple[int, int]]
"""Where a candidate build stands in the daemon's order: ((os, release, variant), serial,
raw arch, rootfs score, fingerprint, position in the documents: (product, build))."""

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
    """A product of the documents, once its own fields are checked."""

    number: int
    """Its position among all products of all documents."""
    doc: int
    key: str
    raw: dict[str, object]
    group: tuple[str, str, str]
    raw_arch: str
    arch: str


_Builds = list[tuple[str, list[tuple[str, ImageType, int]]]]
"""A product's dated versions: (serial, [(fingerprint, type, rootfs score), ...])."""


class LazyProducts:
    """The :class:`~reconciler.model.remote.ImageSource` of a simplestreams catalog.

    ``alias_table`` resolves a key on first lookup (iterating it resolves them
    all); :meth:`image` makes one build (reading its product fully, once),
    :meth:`all_images` every build.
    """

    def __init__(self, remote: str, docs: Sequence[object], sources: Sequence[str],
                 host_arch: str | None) -> None:
        self._remote = remote
        self._docs = docs
        self._sources = sources
        self._native = canonical(host_arch) if host_arch else None
        self._products: list[_Product] = []
        self._builds: list[_Builds] = []
        self._claimants: dict[str, list[tuple[_Product, int, int]]] = {}
        self._first: dict[str, int] = {}
        self._more: dict[str, list[int]] = {}
        self._dates: dict[str, bool] = {}
        self._claims: dict[str, Claim | None] = {}
        self._complete = False
        self._best: dict[int, dict[str, Rank]] = {}
        self._read: dict[int, list[Candidate]] = {}
        self.alias_table = AliasTable(self)
        for number, doc in enumerate(docs):
            reader = ProductsReader(remote, sources[number])
            top = reader.obj(doc, "", "the document")
            products = reader.obj(top.get("products"), "", "'products'")
            for key, raw in products.items():
                self._scan(reader, number, key, reader.obj(raw, f"product {key!r}",
                                                           "the product"))

    # --- the one pass ------------------------------------------------------------------

    def _scan(self, reader: ProductsReader, doc: int, key: str, raw: dict[str, object]
              ) -> None:
        """Check a product's fields; index its alias names and its builds' fingerprints."""
        where = f"product {key!r}"
        raw_arch, versions, _ = reader.product_fields(raw, where)
        arch = canonical(raw_arch)
        if arch is None:
            return  # the daemon skips it; nothing can use it
        product = _Product(len(self._products), doc, key, raw,
                           (_text(raw, "os"), _text(raw, "release"), _text(raw, "variant")),
                           raw_arch, arch)
        try:
            builds = self._index(product.number, versions)
        except (_Garbage, AttributeError, TypeError, KeyError):
            reader.product(raw, where)  # words the problem as the full read does
            reader.fail(where, "is not a product the daemon can read")
        self._products.append(product)
        self._builds.append(builds)
        aliases = [a for a in _text(raw, "aliases").split(",") if a]
        for position, alias in enumerate(aliases):
            for form, name in ((0, alias), (1, f"{alias}/{raw_arch}")):
                self._claimants.setdefault(name, []).append((product, position, form))

    def _index(self, number: int, versions: dict[str, Any]) -> _Builds:
        """The hot loop of the pass (once per version): a product's dated builds, each
        fingerprint's first product (and any other that lists it)."""
        found: _Builds = []
        first, more, dates = self._first, self._more, self._dates
        for serial, version in versions.items():
            dated = dates.get(serial)
            if dated is None:
                dated = dates[serial] = version_date(serial) is not None
            if not dated:
                continue  # the daemon skips it
            builds = _builds(version)
            found.append((serial, builds))
            for fp, _type, _score in builds:
                was = first.setdefault(fp, number)
                if was != number:
                    more.setdefault(fp, []).append(number)
        return found

    # --- alias keys, on lookup -----------------------------------------------------------

    def claim(self, key: str) -> Claim | None:
        """The first claim on ``"name|type|architecture"`` in the daemon's order, or None."""
        if key in self._claims:
            return self._claims[key]
        name, type_, arch = key.rsplit("|", 2)
        won: Claim | None = None
        for product, position, form in self._claimants.get(name, ()):
            if product.arch != arch:
                continue
            rank = self._first_builds(product).get(type_)
            if rank is None:
                continue
            claim = Claim(rank, position, form)
            if won is None or claim_earlier(claim, won):
                won = claim
        self._claims[key] = won
        return won

    def every_claim(self) -> dict[str, Claim | None]:
        """Every alias key resolved (what iterating the alias table needs)."""
        if not self._complete:
            for product in self._products:
                for type_ in self._first_builds(product):
                    for name in self._names(product):
                        self.claim(f"{name}|{type_}|{product.arch}")
            self._complete = True
        return self._claims

    def _names(self, product: _Product) -> list[str]:
        aliases = [a for a in _text(product.raw, "aliases").split(",") if a]
        return [n for a in aliases for n in (a, f"{a}/{product.raw_arch}")]

    def _first_builds(self, product: _Product) -> dict[str, Rank]:
        """A product's first build per type (within a product only serial, score,
        fingerprint and position differ)."""
        best = self._best.get(product.number)
        if best is None:
            best = self._best[product.number] = {}
            for rank, type_ in self._ranks(product):
                held = best.get(type_)
                if held is None or earlier(rank, held):
                    best[type_] = rank
        return best

    def _ranks(self, product: _Product) -> list[tuple[Rank, ImageType]]:
        """Every build of a product, ranked, with its type."""
        ranks: list[tuple[Rank, ImageType]] = []
        for serial, builds in self._builds[product.number]:
            for fp, type_, score in builds:
                rank = (product.group, serial, product.raw_arch, score, fp,
                        (product.number, len(ranks)))
                ranks.append((rank, type_))
        return ranks

    # --- builds, on use --------------------------------------------------------------------

    def image(self, fingerprint: str) -> RemoteImage | None:
        """The build ``fingerprint`` names (its first candidate), or None."""
        number = self._first.get(fingerprint)
        if number is None:
            return None
        if fingerprint in self._more:  # listed by several products: the first in order
            ranked = [(r, p) for p in (number, *self._more[fingerprint])
                      for r, _type in self._ranks(self._products[p]) if r[4] == fingerprint]
            number = functools.reduce(lambda a, b: b if earlier(b[0], a[0]) else a,
                                      ranked)[1]
        same = [c for c in self._candidates(self._products[number])
                if c.image.fingerprint == fingerprint]
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
        if product.number not in self._read:
            reader = ProductsReader(self._remote, self._sources[product.doc])
            self._read[product.number] = reader.product(product.raw,
                                                        f"product {product.key!r}")
        return self._read[product.number]

    def _aliases(self, fingerprint: str) -> tuple[str, ...]:
        """The alias names a build won, as the daemon lists them: in claim order, short
        names only on the host's architecture (any, without a host architecture)."""
        names: list[str] = []
        won = sorted(self._won_by(fingerprint), key=functools.cmp_to_key(_claim_cmp))
        for claim, key in won:
            name, _type, arch = key.rsplit("|", 2)
            listed = claim.form == 1 or self._native is None or self._native == arch
            if listed and name not in names:
                names.append(name)
        return tuple(names)

    def _won_by(self, fingerprint: str) -> list[tuple[Claim, str]]:
        """The alias keys ``fingerprint`` wins, with their claims.  A key's winning claim
        is the first build of a product that lists the key's name, so only the keys of
        the products listing ``fingerprint`` are resolved, not the whole table."""
        number = self._first.get(fingerprint)
        if number is None:
            return []
        won: list[tuple[Claim, str]] = []
        keys: set[str] = set()
        for product in (self._products[n] for n in (number, *self._more.get(fingerprint, ()))):
            for type_ in self._first_builds(product):
                for name in self._names(product):
                    key = f"{name}|{type_}|{product.arch}"
                    if key not in keys:
                        keys.add(key)
                        claim = self.claim(key)
                        if claim is not None and claim.rank[4] == fingerprint:
                            won.append((claim, key))
        return won


class AliasTable(Mapping[str, str]):
    """``"name|type|architecture"`` -> fingerprint, each key resolved on first lookup."""

    def __init__(self, products: LazyProducts) -> None:
        self._products = products

    def __getitem__(self, key: str) -> str:
        claim = self._products.claim(key) if key.count("|") >= 2 else None
        if claim is None:
            raise KeyError(key)
        return claim.rank[4]

    def __iter__(self) -> Iterator[str]:
        return iter([k for k, c in self._products.every_claim().items() if c is not None])

    def __len__(self) -> int:
        return sum(1 for c in self._products.every_claim().values() if c is not None)


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
