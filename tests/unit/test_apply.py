"""apply against in-memory stores: what a pull that lands the wrong build leaves behind."""

from __future__ import annotations

from reconciler.apply.executor import apply_plan
from reconciler.core.planner import make_plan
from tests.support.builders import NOW, build, catalog, config, entry, image
from tests.support.fakes import FakeReader, FakeStore


def test_stale_pull_onto_an_unmanaged_image_gives_its_fields_back() -> None:
    """The daemon's old index resolves the alias to an image nobody manages: that image
    keeps its fields (the store puts back the daemon's overwrite, see
    test_incus_pull_put_back) and is not deleted, and the planned build lands."""
    b1, b2 = build("deb/1", 1), build("deb/1", 2)
    cat = catalog(b1, b2)
    store = FakeStore(universe={"r": cat})
    by_hand = image(b1.fingerprint, properties={"os": "mine"}, auto_update=False, public=False)
    store.put(by_hand, "by-hand")
    store.stale = {b2.fingerprint: b1.fingerprint}
    cfg = config(entry("r:deb/1", "deb", auto_update=True, public=True,
                       properties={"team": "web"}))
    plan = make_plan(cfg, {"r": cat}, {"local": store.observe()}, now=NOW)
    assert [c.action.value for c in plan.changes] == ["image.download", "alias.create"]

    result = apply_plan(plan, stores={"local": store}, reader=FakeReader({"r": cat}),
                        remotes=cfg.remotes)
    assert result.ok, [o.message for o in result.failed]
    assert result.outcomes[0].via == "upload"
    kept = store.images[b1.fingerprint]
    assert (kept.auto_update, kept.public, kept.profiles, kept.properties) == (
        False, False, ("default",), {"os": "mine"})
    landed = store.images[b2.fingerprint]
    assert (landed.auto_update, landed.public, landed.properties.get("team")) == (
        True, True, "web")
    assert store.aliases == {"by-hand": (b1.fingerprint, ""), "deb": (b2.fingerprint, "")}
