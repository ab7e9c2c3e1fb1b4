"""An alias is this owner's only once the tool itself made it point where the file says.

The race: while an apply runs, someone creates a declared alias by hand on an image
nobody manages, just before the tool would create it.  That apply fails (right), and
nothing may then treat the hand-made alias as the tool's: the next plan with
``alias_conflicts: fail`` is a conflict, a file without the alias does not delete it,
and the image holding it never becomes this owner's.
"""

from __future__ import annotations

import pytest

from reconciler.apply.executor import apply_plan
from reconciler.core.inventory import decode
from reconciler.core.ownership import attribute
from reconciler.core.planner import make_plan
from reconciler.errors import ConflictError
from reconciler.model.observed import Inventory, inventory_key
from reconciler.model.plan import Action, Plan
from reconciler.model.remote import RemoteCatalog
from tests.support.builders import NOW, build, catalog, config, entry, image
from tests.support.fakes import FakeReader, FakeStore

OWNER = "incus-images"


def _inventory(store: FakeStore) -> Inventory:
    key = inventory_key(OWNER, store.project)
    return decode(OWNER, store.project, store.config.get(key, "{}"))


def _apply(plan: Plan, store: FakeStore, cat: RemoteCatalog) -> list[str]:
    cfg = config()
    result = apply_plan(plan, stores={"local": store}, reader=FakeReader({"r": cat}),
                        remotes=cfg.remotes)
    return [f"{o.change.action.value} {o.status.value}" for o in result.outcomes]


@pytest.fixture
def raced() -> tuple[FakeStore, RemoteCatalog, str, str]:
    """An apply that lost the race for alias ``deb`` to a hand-made alias on image U."""
    b1 = build("deb/1", 1)
    unmanaged = build("other/1", 1)
    cat = catalog(b1)
    store = FakeStore(universe={"r": cat})
    store.put(image(unmanaged.fingerprint))
    store.before_alias_create["deb"] = lambda: store.aliases.__setitem__(
        "deb", (unmanaged.fingerprint, "made by hand"))
    plan = make_plan(config(entry("r:deb/1", "deb")), {"r": cat},
                     {"local": store.observe()}, now=NOW)
    assert [c.action for c in plan.changes] == [Action.IMAGE_DOWNLOAD, Action.ALIAS_CREATE]
    outcomes = _apply(plan, store, cat)
    assert outcomes == ["image.download done", "alias.create failed"]
    return store, cat, b1.fingerprint, unmanaged.fingerprint


def test_failed_create_leaves_the_alias_out_of_the_record(
    raced: tuple[FakeStore, RemoteCatalog, str, str],
) -> None:
    store, _, fp, _ = raced
    inv = _inventory(store)
    assert fp in inv.images, "the downloaded image itself is recorded"
    assert inv.images[fp].aliases == ()
    assert "deb" not in inv.aliases


def test_next_plan_is_a_conflict_not_a_move(
    raced: tuple[FakeStore, RemoteCatalog, str, str],
) -> None:
    store, cat, _, unmanaged = raced
    with pytest.raises(ConflictError) as info:
        make_plan(config(entry("r:deb/1", "deb")), {"r": cat}, {"local": store.observe()},
                  now=NOW)
    assert f"alias 'deb' is held by image {unmanaged}" in str(info.value)
    assert store.aliases["deb"] == (unmanaged, "made by hand")


def test_a_file_without_the_alias_leaves_it_alone(
    raced: tuple[FakeStore, RemoteCatalog, str, str],
) -> None:
    store, cat, _, unmanaged = raced
    plan = make_plan(config(entry("r:deb/1")), {"r": cat}, {"local": store.observe()},
                     now=NOW)
    assert not [c for c in plan.changes if c.alias == "deb"]
    assert all(o.endswith("done") for o in _apply(plan, store, cat))
    assert store.aliases["deb"] == (unmanaged, "made by hand")
    assert "deb" not in _inventory(store).aliases


def test_a_file_without_the_entry_leaves_the_alias_and_its_image_alone(
    raced: tuple[FakeStore, RemoteCatalog, str, str],
) -> None:
    store, cat, fp, unmanaged = raced
    plan = make_plan(config(), {"r": cat}, {"local": store.observe()}, now=NOW,
                     allow_empty=True)
    assert [(c.action, c.fingerprint) for c in plan.changes] == [(Action.IMAGE_DELETE, fp)]
    assert all(o.endswith("done") for o in _apply(plan, store, cat))
    assert store.aliases == {"deb": (unmanaged, "made by hand")}
    assert unmanaged in store.images


def test_the_image_holding_the_hand_made_alias_never_becomes_ours(
    raced: tuple[FakeStore, RemoteCatalog, str, str],
) -> None:
    """Were ``deb`` in the record of the downloaded build, deleting that build by hand
    would make U look like its auto-updated successor: this owner's, to prune."""
    store, cat, fp, unmanaged = raced
    store.delete_image(fp)
    assert attribute(store.observe())[unmanaged].owner is None
    plan = make_plan(config(), {"r": cat}, {"local": store.observe()}, now=NOW,
                     allow_empty=True)
    assert not [c for c in plan.changes if c.fingerprint == unmanaged]


def test_an_alias_the_tool_made_is_recorded_once_it_exists() -> None:
    b1 = build("deb/1", 1)
    cat = catalog(b1)
    store = FakeStore(universe={"r": cat})
    seen: list[tuple[str, ...]] = []

    def aliases_recorded() -> tuple[str, ...]:
        inventory = _inventory(store)
        if b1.fingerprint in inventory.images:
            return inventory.images[b1.fingerprint].aliases
        # Not recorded yet: its pull's in-flight marker claims it, with that record.
        (marker,) = inventory.pending
        return marker.record.aliases

    store.before_alias_create["deb"] = lambda: seen.append(aliases_recorded())
    cfg = config(entry("r:deb/1", "deb"))
    plan = make_plan(cfg, {"r": cat}, {"local": store.observe()}, now=NOW)
    assert all(o.endswith("done") for o in _apply(plan, store, cat))
    assert seen == [()], "not yet recorded while the alias did not exist"
    assert _inventory(store).images[b1.fingerprint].aliases == ("deb",)


def test_an_interrupted_move_to_a_new_build_is_finished_by_the_next_plan() -> None:
    """Tracking: the new build is recorded without the alias until the move lands; the
    old build's record keeps it, so the next plan still moves it as this owner's."""
    b1, b2 = build("deb/1", 1), build("deb/1", 2)
    cat1, cat2 = catalog(b1), catalog(b1, b2)
    store = FakeStore(universe={"r": cat1})
    cfg = config(entry("r:deb/1", "deb"))
    plan = make_plan(cfg, {"r": cat1}, {"local": store.observe()}, now=NOW)
    assert all(o.endswith("done") for o in _apply(plan, store, cat1))

    store.universe = {cat2.url: cat2}
    plan = make_plan(cfg, {"r": cat2}, {"local": store.observe()}, now=NOW)
    assert [c.action for c in plan.changes] == [
        Action.IMAGE_DOWNLOAD, Action.ALIAS_MOVE, Action.IMAGE_DELETE]
    store.fail_alias.add("deb")
    outcomes = _apply(plan, store, cat2)
    assert outcomes == ["image.download done", "alias.move failed", "image.delete skipped"]
    inv = _inventory(store)
    assert inv.images[b2.fingerprint].aliases == ()
    assert inv.images[b1.fingerprint].aliases == ("deb",)

    store.fail_alias.clear()
    plan = make_plan(cfg, {"r": cat2}, {"local": store.observe()}, now=NOW)
    assert [c.action for c in plan.changes] == [Action.ALIAS_MOVE, Action.IMAGE_DELETE]
    assert all(o.endswith("done") for o in _apply(plan, store, cat2))
    assert store.aliases == {"deb": (b2.fingerprint, "")}
    assert _inventory(store).images == {b2.fingerprint: _inventory(store).images[b2.fingerprint]}
    assert _inventory(store).images[b2.fingerprint].aliases == ("deb",)


def test_an_alias_in_place_at_plan_time_is_recorded_only_if_still_there() -> None:
    """Adoption: a declared alias already on the image needs no change, but someone may
    move it away before the apply ends; then it is not recorded, and the next plan
    treats it as the conflict it is."""
    b1 = build("deb/1", 1)
    unmanaged = build("other/1", 1)
    cat = catalog(b1)
    store = FakeStore(universe={"r": cat})
    store.put(image(b1.fingerprint), "deb", "keep")
    store.put(image(unmanaged.fingerprint))
    cfg = config(entry("r:deb/1", "deb", "keep"))
    plan = make_plan(cfg, {"r": cat}, {"local": store.observe()}, now=NOW)
    assert [c.action for c in plan.changes] == [Action.IMAGE_ADOPT]
    store.aliases["deb"] = (unmanaged.fingerprint, "")  # by hand, while the apply runs
    assert _apply(plan, store, cat) == ["image.adopt done"]
    assert _inventory(store).images[b1.fingerprint].aliases == ("keep",)
    held = f"alias 'deb' is held by image {unmanaged.fingerprint}"
    with pytest.raises(ConflictError, match=held):
        make_plan(cfg, {"r": cat}, {"local": store.observe()}, now=NOW)


def test_an_alias_still_to_delete_stays_recorded_until_deleted() -> None:
    """A kill (here: a failure) between rewriting the image's record and deleting an alias
    the file dropped leaves that alias this owner's, so the next plan deletes it."""
    b1 = build("deb/1", 1)
    cat = catalog(b1)
    store = FakeStore(universe={"r": cat})
    plan = make_plan(config(entry("r:deb/1", "deb", "old")), {"r": cat},
                     {"local": store.observe()}, now=NOW)
    assert all(o.endswith("done") for o in _apply(plan, store, cat))
    assert _inventory(store).images[b1.fingerprint].aliases == ("deb", "old")

    cfg = config(entry("r:deb/1", "deb", public=True))
    plan = make_plan(cfg, {"r": cat}, {"local": store.observe()}, now=NOW)
    assert [c.action for c in plan.changes] == [Action.IMAGE_UPDATE, Action.ALIAS_DELETE]
    store.fail_alias.add("old")
    assert _apply(plan, store, cat) == ["image.update done", "alias.delete failed"]
    assert _inventory(store).images[b1.fingerprint].aliases == ("deb", "old")

    store.fail_alias.clear()
    plan = make_plan(cfg, {"r": cat}, {"local": store.observe()}, now=NOW)
    assert [(c.action, c.alias) for c in plan.changes] == [(Action.ALIAS_DELETE, "old")]
    assert _apply(plan, store, cat) == ["alias.delete done"]
    assert store.aliases == {"deb": (b1.fingerprint, "")}
    assert _inventory(store).images[b1.fingerprint].aliases == ("deb",)
