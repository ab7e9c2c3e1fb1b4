"""Property: for random desired and observed stores, apply(plan) converges and never
touches what this owner does not manage."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.apply.executor import apply_plan
from reconciler.core.inventory import encode
from reconciler.core.ownership import attribute
from reconciler.core.planner import make_plan
from reconciler.errors import ConflictError, PlanError
from reconciler.model.observed import Inventory, Profile, RecordedImage, inventory_key
from tests.support.builders import NOW, build, catalog, config, entry, image
from tests.support.fakes import FakeReader, FakeStore

SOURCES = ["deb/1", "alp/1", "fed/1"]
ALIASES = ["a", "b", "c", "d", "e"]
BUILDS = {s: [build(s, n) for n in (1, 2, 3)] for s in SOURCES}
CATALOG = catalog(*(b for bs in BUILDS.values() for b in bs))


@st.composite
def entries(draw: st.DrawFn) -> list[object]:
    sources = draw(st.lists(st.sampled_from(SOURCES), unique=True, max_size=3))
    pool = list(ALIASES)
    out = []
    for src in sources:
        names = draw(st.lists(st.sampled_from(pool), unique=True, max_size=2)) if pool else []
        pool = [p for p in pool if p not in names]
        pin = draw(st.sampled_from([None, None, *[b.fingerprint for b in BUILDS[src]]]))
        out.append(entry(
            f"r:{src}", *names, fingerprint=pin,
            auto_update=False if pin else draw(st.booleans()),
            public=draw(st.booleans()),
            profiles=tuple(draw(st.sampled_from([["default"], ["default", "x"], []]))),
            properties=draw(st.dictionaries(st.sampled_from(["team", "tier"]),
                                            st.sampled_from(["1", "2"]), max_size=2)),
        ))
    return out


@st.composite
def stores(draw: st.DrawFn) -> FakeStore:
    store = FakeStore(universe={"r": CATALOG})
    store.profiles["x"] = Profile(name="x")  # the daemon refuses a profile it does not have
    mine: dict[str, RecordedImage] = {}
    theirs: dict[str, RecordedImage] = {}
    free = list(ALIASES)
    for i, src in enumerate(SOURCES):
        for b in BUILDS[src]:
            kind = draw(st.sampled_from(["absent", "absent", "mine", "nobody", "other", "cached"]))
            if kind == "absent":
                continue
            names = draw(st.lists(st.sampled_from(free), unique=True, max_size=1)) if free else []
            free = [f for f in free if f not in names]
            store.put(image(b.fingerprint, cached=kind == "cached",
                            properties=dict(b.properties)), *names)
            rec = RecordedImage(source=f"r:{src}", architecture="x86_64", aliases=tuple(names))
            if kind == "mine":
                mine[b.fingerprint] = rec
            elif kind == "other":
                theirs[b.fingerprint] = rec
        if draw(st.booleans()):
            fp = f"{i:x}" * 64
            names = draw(st.lists(st.sampled_from(free), unique=True, max_size=1)) if free else []
            free = [f for f in free if f not in names]
            store.put(image(fp[:64]), *names)
    for owner, images in (("incus-images", mine), ("other", theirs)):
        if images:
            store.config[inventory_key(owner, "default")] = encode(
                Inventory(owner=owner, project="default", images=images))
    return store


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(desired=entries(), store=stores(), take=st.booleans())
def test_apply_converges_and_spares_others(desired: list[object], store: FakeStore,
                                           take: bool) -> None:
    cfg = config(*desired, alias_conflicts="take" if take else "fail")  # type: ignore[arg-type]
    before = store.observe()
    attrs = attribute(before)
    try:
        plan = make_plan(cfg, {"r": CATALOG}, {"local": before}, now=NOW, allow_empty=True)
    except (ConflictError, PlanError):
        return
    result = apply_plan(plan, stores={"local": store}, reader=FakeReader({"r": CATALOG}),
                        remotes=cfg.remotes)
    assert result.ok, [o.message for o in result.failed]
    after = store.observe()
    again = make_plan(cfg, {"r": CATALOG}, {"local": after}, now=NOW, allow_empty=True)
    assert again.changes == (), [(c.action.value, c.alias, c.fingerprint) for c in again.changes]
    adopted = {c.fingerprint for c in plan.changes if c.action.value in ("image.adopt",)}
    replaced = {c.fingerprint for c in plan.changes if c.replace_cached}
    taken = {c.alias for c in plan.changes if c.action.value == "alias.move"}
    for img in before.images:
        if attrs[img.fingerprint].owner == "incus-images":
            continue
        if img.fingerprint in adopted or img.fingerprint in replaced:
            continue
        now_img = after.image(img.fingerprint)
        assert now_img is not None, f"unmanaged {img.fingerprint[:8]} was deleted"
        kept = {a.name for a in img.aliases} - (taken if take else set())
        assert kept <= {a.name for a in now_img.aliases}
        assert now_img.model_copy(update={"aliases": ()}) == img.model_copy(update={"aliases": ()})
