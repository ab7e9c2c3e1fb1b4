"""The planner with a lock file: locked builds win over the remote's newest."""

from __future__ import annotations

import pytest

from reconciler.apply.executor import apply_plan
from reconciler.core.planner import make_plan
from reconciler.errors import PlanError
from reconciler.model.config import Config
from reconciler.model.lock import LockedBuild, LockKey, Locks
from reconciler.model.plan import Plan
from reconciler.model.remote import RemoteCatalog, RemoteImage
from tests.support.builders import NOW, build, catalog, config, entry
from tests.support.fakes import FakeReader, FakeStore


def locked(b: RemoteImage, source: str = "r:deb/1", target: str = "local") -> Locks:
    return {LockKey(target, source, b.type, b.architecture):
            LockedBuild(fingerprint=b.fingerprint, version=b.version, size=b.size)}


def plan_for(cfg: Config, store: FakeStore, cat: RemoteCatalog, locks: Locks | None) -> Plan:
    return make_plan(cfg, {"r": cat}, {store.target: store.observe()}, now=NOW, locks=locks)


def converge(cfg: Config, store: FakeStore, cat: RemoteCatalog, locks: Locks | None) -> Plan:
    plan = plan_for(cfg, store, cat, locks)
    result = apply_plan(plan, stores={"local": store}, reader=FakeReader({"r": cat}),
                        remotes=cfg.remotes)
    assert result.ok, [o.message for o in result.failed]
    assert plan_for(cfg, store, cat, locks).changes == ()
    return plan


def codes(plan: Plan) -> list[str]:
    return [w.code for w in plan.warnings]


def test_locked_build_holds_against_a_newer_upstream_build() -> None:
    b1, b2 = build("deb/1", 1), build("deb/1", 2)
    store = FakeStore(universe={"r": catalog(b1, b2)})
    cfg = config(entry("r:deb/1", "deb", auto_update=True))
    first = converge(cfg, store, catalog(b1), locked(b1))
    assert first.changes[0].pull is not None and first.changes[0].pull.alias == "deb/1"
    # b2 appears upstream: with the lock, nothing to do.
    assert plan_for(cfg, store, catalog(b1, b2), locked(b1)).changes == ()
    # Without a lock file the same store would move to b2.
    assert plan_for(cfg, store, catalog(b1, b2), None).changes[0].fingerprint == b2.fingerprint
    # Moving the lock brings b2 in by alias (it is the newest), moves the alias, drops b1.
    moved = converge(cfg, store, catalog(b1, b2), locked(b2))
    assert [c.action.value for c in moved.changes] == ["image.download", "alias.move",
                                                        "image.delete"]
    assert set(store.images) == {b2.fingerprint}


def test_older_locked_build_is_pulled_by_fingerprint_with_no_source_warning() -> None:
    b1, b2 = build("deb/1", 1), build("deb/1", 2)
    cat = catalog(b1, b2)
    store = FakeStore(universe={"r": cat})
    cfg = config(entry("r:deb/1", "deb", auto_update=True))
    plan = converge(cfg, store, cat, locked(b1))
    pull = plan.changes[0].pull
    assert pull is not None and pull.fingerprint == b1.fingerprint and pull.alias is None
    assert codes(plan) == ["auto_update.no_source"]
    assert "lock --upgrade r:deb/1" in plan.warnings[0].message
    assert set(store.images) == {b1.fingerprint}
    # Once present, the usual no-source warning remains (the daemon has no source).
    assert codes(plan_for(cfg, store, cat, locked(b1))) == ["auto_update.no_source"]


def test_older_locked_build_without_auto_update_warns_nothing() -> None:
    b1, b2 = build("deb/1", 1), build("deb/1", 2)
    cat = catalog(b1, b2)
    store = FakeStore(universe={"r": cat})
    plan = converge(config(entry("r:deb/1", "deb")), store, cat, locked(b1))
    assert plan.warnings == ()


def test_entry_missing_from_the_lock_is_resolved_live_with_a_warning() -> None:
    b1, b2 = build("deb/1", 1), build("deb/1", 2)
    other = build("alp/3", 1)
    cat = catalog(b1, b2, other)
    store = FakeStore(universe={"r": cat})
    cfg = config(entry("r:deb/1", "deb"), entry("r:alp/3", "alp"))
    plan = plan_for(cfg, store, cat, locked(b1))
    fps = {c.source: c.fingerprint for c in plan.changes if c.action.value == "image.download"}
    assert fps == {"r:deb/1": b1.fingerprint, "r:alp/3": other.fingerprint}
    assert [(w.code, w.image) for w in plan.warnings] == [("lock.missing", "r:alp/3")]
    # No lock file at all: no lock.missing warning.
    assert plan_for(cfg, store, cat, None).warnings == ()


def test_pins_ignore_the_lock() -> None:
    b1, b2 = build("deb/1", 1), build("deb/1", 2)
    cat = catalog(b1, b2)
    store = FakeStore(universe={"r": cat})
    cfg = config(entry("r:deb/1", "deb", fingerprint=b2.fingerprint))
    plan = plan_for(cfg, store, cat, locked(b1))
    assert plan.changes[0].fingerprint == b2.fingerprint and plan.warnings == ()


def test_locked_build_gone_upstream_and_absent_is_an_error_naming_lock_upgrade() -> None:
    b1, b2 = build("deb/1", 1), build("deb/1", 2)
    store = FakeStore(universe={"r": catalog(b2)})
    with pytest.raises(PlanError) as err:
        plan_for(config(entry("r:deb/1", "deb")), store, catalog(b2), locked(b1))
    message = str(err.value)
    assert "r:deb/1" in message and b1.fingerprint in message
    assert "no longer serves" in message and "lock --upgrade r:deb/1" in message


def test_locked_build_gone_upstream_but_in_the_store_is_kept() -> None:
    b1, b2 = build("deb/1", 1), build("deb/1", 2)
    store = FakeStore(universe={"r": catalog(b1, b2)})
    cfg = config(entry("r:deb/1", "deb"))
    converge(cfg, store, catalog(b1, b2), locked(b1))
    assert plan_for(cfg, store, catalog(b2), locked(b1)).changes == ()


def _daemon_auto_update(store: FakeStore, old: RemoteImage, new: RemoteImage) -> None:
    """What the daemon's auto-update does: new build in, aliases moved, old one deleted."""
    img = store.images.pop(old.fingerprint)
    store.images[new.fingerprint] = img.model_copy(update={
        "fingerprint": new.fingerprint, "properties": dict(new.properties),
        "created_at": new.created_at})
    store.aliases = {n: (new.fingerprint if t == old.fingerprint else t, d)
                     for n, (t, d) in store.aliases.items()}


def test_daemon_moving_past_the_lock_is_not_drift_with_auto_update() -> None:
    b1, b2 = build("deb/1", 1), build("deb/1", 2)
    cat = catalog(b1, b2)
    store = FakeStore(universe={"r": cat})
    cfg = config(entry("r:deb/1", "deb", auto_update=True))
    converge(cfg, store, catalog(b1), locked(b1))
    _daemon_auto_update(store, b1, b2)
    store.calls.clear()
    plan = converge(cfg, store, cat, locked(b1))
    assert not [c for c in plan.changes if c.action.value in ("image.download",
                                                              "image.delete")]
    assert set(store.images) == {b2.fingerprint}
    # Even when the remote has dropped that build since.
    assert plan_for(cfg, store, catalog(b1), locked(b1)).changes == ()


def test_without_auto_update_a_build_past_the_lock_is_replaced_by_the_locked_one() -> None:
    b1, b2 = build("deb/1", 1), build("deb/1", 2)
    cat = catalog(b1, b2)
    store = FakeStore(universe={"r": cat})
    cfg = config(entry("r:deb/1", "deb"))
    converge(cfg, store, cat, None)  # b2, the newest, managed
    plan = converge(cfg, store, cat, locked(b1))
    assert [(c.action.value, c.fingerprint) for c in plan.changes
            if c.action.value.startswith("image.")] == [
        ("image.download", b1.fingerprint), ("image.delete", b2.fingerprint)]


def test_lock_older_than_the_managed_image_after_upgrade_is_followed_when_newer() -> None:
    b1, b2, b3 = build("deb/1", 1), build("deb/1", 2), build("deb/1", 3)
    cat = catalog(b1, b2, b3)
    store = FakeStore(universe={"r": cat})
    cfg = config(entry("r:deb/1", "deb", auto_update=True))
    converge(cfg, store, cat, locked(b2))
    # The lock moves forward past what the store holds: the locked build comes in.
    plan = converge(cfg, store, cat, locked(b3))
    assert plan.changes[0].fingerprint == b3.fingerprint
    assert set(store.images) == {b3.fingerprint}
