"""The lazy simplestreams catalog decides exactly as the eager one did, and reads only what it uses.

The oracle (tests.support.eager_catalog) is the reader as it was before the catalog
was lazy: every build made, one sort over all of them.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from reconciler.adapters.remotes.simplestreams import build_catalog
from reconciler.core.planner import make_plan
from reconciler.errors import IncusImagesError, RemoteError
from reconciler.model.config import RemoteSpec
from reconciler.model.remote import RemoteCatalog
from tests.support.bigindex import public_like, tricky
from tests.support.builders import NOW, config, entry
from tests.support.eager_catalog import eager_catalog
from tests.support.fakes import FakeStore

REMOTE = RemoteSpec(name="r", url="https://images.test", protocol="simplestreams")
SEEDS = range(60)
ALIASES = ("a", "b", "a/1", "c", "a/1/cloud")
ARCHES = ("x86_64", "aarch64")


def both(*docs: dict[str, Any], host_arch: str | None = None) -> tuple[RemoteCatalog,
                                                                        RemoteCatalog]:
    return (build_catalog(REMOTE, list(docs), host_arch),
            eager_catalog(REMOTE, list(docs), host_arch))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("host_arch", [None, "amd64"])
def test_same_alias_table_and_builds_as_the_eager_reader(seed: int, host_arch: str | None
                                                         ) -> None:
    lazy, eager = both(tricky(seed), tricky(seed + 1000), host_arch=host_arch)
    assert dict(lazy.alias_table) == eager.alias_table
    assert lazy.images == eager.images


@pytest.mark.parametrize("seed", SEEDS)
def test_each_build_made_on_use_is_the_eager_build(seed: int) -> None:
    """Asked one at a time (no full read first): the same build, aliases included."""
    lazy, eager = both(tricky(seed), tricky(seed + 1000), host_arch="amd64")
    for key in eager.alias_table:
        name, type_, arch = key.rsplit("|", 2)
        assert lazy.resolve(name, type_, arch) == eager.resolve(name, type_, arch), key
    for image in eager.images:
        assert lazy.by_fingerprint(image.fingerprint) == image
    assert lazy.by_fingerprint("0" * 64) is None
    assert lazy.resolve("nope", "container", "x86_64") is None


def _decision(cat: RemoteCatalog, **kw: object) -> object:
    """What the planner decides for one entry on an empty store: its changes, or its error."""
    cfg = config(entry(**kw))  # type: ignore[arg-type]
    store = FakeStore(universe={"r": cat})
    try:
        plan = make_plan(cfg, {"r": cat}, {"local": store.observe()}, now=NOW)
    except IncusImagesError as exc:
        return f"{type(exc).__name__}: {exc}"
    return plan.model_dump(mode="json", exclude={"created_at"})["changes"]


@pytest.mark.parametrize("seed", range(0, 60, 3))
def test_the_planner_decides_the_same_for_every_entry(seed: int) -> None:
    lazy, eager = both(tricky(seed))
    fps = sorted({i.fingerprint for i in eager.images})[:6]
    entries = [dict(source=f"r:{alias}", type=type_, architecture=arch)
               for alias in ALIASES for type_ in ("container", "virtual-machine")
               for arch in ARCHES]
    entries += [dict(source="r:a", fingerprint=fp) for fp in fps]
    for kw in entries:
        assert _decision(lazy, **kw) == _decision(eager, **kw), kw


def test_a_public_size_index_resolves_as_before() -> None:
    doc = public_like(products=300)
    lazy, eager = both(doc, host_arch="amd64")
    assert dict(lazy.alias_table) == eager.alias_table
    for key in list(eager.alias_table)[::7]:
        name, type_, arch = key.rsplit("|", 2)
        assert lazy.resolve(name, type_, arch) == eager.resolve(name, type_, arch)


# --- what is read, and when ----------------------------------------------------------------


def _two_products() -> dict[str, Any]:
    doc = public_like(products=2)  # os0:r0:amd64:default and os0:r0:arm64:default
    return copy.deepcopy(doc)


def test_garbage_in_a_product_no_entry_uses_is_never_read() -> None:
    doc = _two_products()
    arm = doc["products"]["os0:r0:arm64:default"]
    for version in arm["versions"].values():
        version["items"]["root.squashfs"]["sha256"] = "not hex"
        version["items"]["root.squashfs"]["size"] = "big"
    cat = build_catalog(REMOTE, [doc])
    image = cat.resolve("os0/r0", "container", "x86_64")
    assert image is not None and image.remote_architecture == "amd64"
    with pytest.raises(RemoteError, match="product 'os0:r0:arm64:default' version"):
        cat.resolve("os0/r0", "container", "aarch64")


def test_garbage_in_a_used_product_fails_as_the_eager_reader_words_it() -> None:
    doc = _two_products()
    amd = doc["products"]["os0:r0:amd64:default"]
    first = next(iter(amd["versions"].values()))  # an old version, not the one resolved
    del first["items"]["lxd.tar.xz"]["path"]
    first["items"]["lxd.tar.xz"]["size"] = -1
    with pytest.raises(RemoteError) as eager:
        eager_catalog(REMOTE, [doc])
    with pytest.raises(RemoteError) as lazy:
        build_catalog(REMOTE, [doc]).resolve("os0/r0/default", "container", "x86_64")
    assert str(lazy.value) == str(eager.value)


@pytest.mark.parametrize("damage", [
    lambda v: v["items"]["incus.tar.xz"].__setitem__("combined_squashfs_sha256", "ABC"),
    lambda v: v["items"]["incus.tar.xz"].__setitem__("combined_squashfs_sha256", 7),
    lambda v: v["items"]["root.squashfs"].__setitem__("ftype", ["squashfs"]),
    lambda v: v["items"].__setitem__("x", "item"),
    lambda v: v["items"]["root.squashfs"].pop("ftype"),
    lambda v: v.__setitem__("items", []),
])
def test_garbage_the_alias_table_depends_on_fails_at_once_in_the_same_words(damage: Any
                                                                           ) -> None:
    doc = _two_products()
    arm = doc["products"]["os0:r0:arm64:default"]
    damage(next(iter(arm["versions"].values())))
    with pytest.raises(RemoteError) as eager:
        eager_catalog(REMOTE, [doc])
    with pytest.raises(RemoteError) as lazy:
        build_catalog(REMOTE, [doc])
    assert str(lazy.value) == str(eager.value)


def test_a_build_is_made_without_resolving_the_whole_alias_table(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Its alias names come from the keys of the products listing it, not from every key
    of the index (a public index has ~20,000 of them)."""
    from reconciler.adapters.remotes import sslazy

    doc = public_like(products=300)
    lazy, eager = both(doc, host_arch="amd64")
    wanted = list(eager.alias_table)[::50]

    def refuse(self: object) -> dict[str, object]:
        raise AssertionError("the whole alias table was resolved")

    monkeypatch.setattr(sslazy.LazyProducts, "every_claim", refuse)
    for key in wanted:
        name, type_, arch = key.rsplit("|", 2)
        assert lazy.resolve(name, type_, arch) == eager.resolve(name, type_, arch)
