"""The pure core: planner + apply against in-memory stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reconciler.apply.executor import apply_plan
from reconciler.core.inventory import decode, encode
from reconciler.core.planner import make_plan
from reconciler.errors import ConflictError, EmptyFileRefused, PlanError
from reconciler.model.config import Config
from reconciler.model.observed import (
    Inventory,
    PendingPull,
    RecordedImage,
    UpdateSource,
    inventory_key,
)
from reconciler.model.plan import Plan
from reconciler.model.remote import RemoteCatalog
from tests.support.builders import NOW, build, catalog, config, entry, image
from tests.support.fakes import FakeReader, FakeStore


def actions(plan: Plan) -> list[tuple[str, str]]:
    return [(c.action.value, c.alias or (c.fingerprint or "")[:6]) for c in plan.changes]


def plan_for(cfg: Config, store: FakeStore, cat: RemoteCatalog, **kw: object) -> Plan:
    return make_plan(cfg, {"r": cat}, {store.target: store.observe()}, now=NOW, **kw)  # type: ignore[arg-type]


def apply(cfg: Config, store: FakeStore, cat: RemoteCatalog, plan: Plan) -> None:
    result = apply_plan(plan, stores={store.target: store}, reader=FakeReader({"r": cat}),
                        remotes=cfg.remotes)
    assert result.ok, [o.message for o in result.failed]


def converge(cfg: Config, store: FakeStore, cat: RemoteCatalog) -> Plan:
    plan = plan_for(cfg, store, cat)
    apply(cfg, store, cat, plan)
    again = plan_for(cfg, store, cat)
    assert again.changes == (), actions(again)
    return plan


def record(store: FakeStore, owner: str = "incus-images", **images: RecordedImage) -> None:
    inv = Inventory(owner=owner, project="default", images=images)
    store.config[inventory_key(owner, "default")] = encode(inv)


def test_fresh_apply_downloads_creates_aliases_then_nothing() -> None:
    b1 = build("deb/1", 1)
    cat = catalog(b1)
    store = FakeStore(universe={"r": cat})
    cfg = config(entry("r:deb/1", "deb", "debian", auto_update=True))
    plan = converge(cfg, store, cat)
    assert actions(plan) == [("image.download", b1.fingerprint[:6]),
                             ("alias.create", "deb"), ("alias.create", "debian")]
    dl = plan.changes[0]
    assert dl.pull is not None and dl.pull.alias == "deb/1" and dl.pull.protocol == "simplestreams"
    assert dl.size == b1.size and plan.summary.download_bytes == b1.size
    assert store.images[b1.fingerprint].update_source is not None


def test_new_upstream_build_downloads_moves_aliases_deletes_old() -> None:
    b1, b2 = build("deb/1", 1), build("deb/1", 2)
    store = FakeStore(universe={"r": catalog(b1, b2)})
    cfg = config(entry("r:deb/1", "deb", "debian"))
    converge(cfg, store, catalog(b1))
    plan = converge(cfg, store, catalog(b1, b2))
    assert actions(plan) == [("image.download", b2.fingerprint[:6]),
                             ("alias.move", "deb"), ("alias.move", "debian"),
                             ("image.delete", b1.fingerprint[:6])]
    assert set(store.images) == {b2.fingerprint}


def test_stale_daemon_index_lands_planned_build_by_upload() -> None:
    b1, b2 = build("deb/1", 1), build("deb/1", 2)
    cat2 = catalog(b1, b2)
    store = FakeStore(universe={"r": cat2})
    cfg = config(entry("r:deb/1", "deb"))
    converge(cfg, store, catalog(b1))
    store.stale = {b2.fingerprint: b1.fingerprint}
    plan = plan_for(cfg, store, cat2)
    result = apply_plan(plan, stores={"local": store}, reader=FakeReader({"r": cat2}),
                        remotes=cfg.remotes)
    assert result.ok
    assert result.outcomes[0].via == "upload"
    assert set(store.images) == {b2.fingerprint}
    assert store.aliases["deb"][0] == b2.fingerprint
    warnings = plan_for(cfg.model_copy(update={"entries": (entry(
        "r:deb/1", "deb", auto_update=True),)}), store, cat2).warnings
    assert [w.code for w in warnings] == ["auto_update.no_source"]


def test_alias_only_edit_moves_no_bytes() -> None:
    b1 = build("deb/1", 1)
    cat = catalog(b1)
    store = FakeStore(universe={"r": cat})
    converge(config(entry("r:deb/1", "deb", "old")), store, cat)
    store.calls.clear()
    plan = converge(config(entry("r:deb/1", "deb", "new")), store, cat)
    assert actions(plan) == [("alias.create", "new"), ("alias.delete", "old")]
    assert not [c for c in store.calls if c.startswith(("pull", "upload"))]


def test_removed_entry_is_deleted_hand_imported_image_stays() -> None:
    a, b = build("deb/1", 1), build("alp/1", 1)
    cat = catalog(a, b)
    store = FakeStore(universe={"r": cat})
    store.put(image("f" * 64, properties={"os": "mine"}), "by-hand")
    converge(config(entry("r:deb/1", "deb"), entry("r:alp/1", "alp")), store, cat)
    plan = converge(config(entry("r:deb/1", "deb")), store, cat)
    assert actions(plan) == [("image.delete", b.fingerprint[:6])]
    assert "f" * 64 in store.images and store.aliases["by-hand"][0] == "f" * 64
    assert [u.fingerprint for u in plan.untouched] == ["f" * 64]


def test_prune_false_keeps_undeclared_images() -> None:
    a, b = build("deb/1", 1), build("alp/1", 1)
    cat = catalog(a, b)
    store = FakeStore(universe={"r": cat})
    converge(config(entry("r:deb/1"), entry("r:alp/1")), store, cat)
    assert plan_for(config(entry("r:deb/1"), prune=False), store, cat).changes == ()


def test_expiry_written_cleared_then_enforced() -> None:
    b1 = build("deb/1", 1, support_eol=datetime(2030, 1, 1, tzinfo=UTC))
    cat = catalog(b1)
    store = FakeStore(universe={"r": cat})
    converge(config(entry("r:deb/1", "deb")), store, cat)
    # The daemon's own expiry from the remote (support_eol) is left alone.
    assert store.images[b1.fingerprint].expires_at == datetime(2030, 1, 1, tzinfo=UTC)
    future = NOW + timedelta(days=30)
    plan = converge(config(entry("r:deb/1", "deb", expires_at=future)), store, cat)
    assert actions(plan) == [("image.update", b1.fingerprint[:6])]
    assert store.images[b1.fingerprint].expires_at == future
    plan = converge(config(entry("r:deb/1", "deb")), store, cat)
    assert plan.changes[0].fields is not None
    assert plan.changes[0].fields["expires_at"].to is None
    assert store.images[b1.fingerprint].expires_at is None
    past = NOW - timedelta(days=1)
    plan = converge(config(entry("r:deb/1", "deb", expires_at=past)), store, cat)
    assert actions(plan) == [("image.delete", b1.fingerprint[:6])]
    assert store.images == {}


def test_expired_entry_never_downloaded() -> None:
    cat = catalog(build("deb/1", 1))
    store = FakeStore(universe={"r": cat})
    cfg = config(entry("r:deb/1", "deb", expires_at=NOW - timedelta(seconds=1)))
    assert plan_for(cfg, store, cat).changes == ()


def test_expires_after_counts_from_build_date_and_is_stable() -> None:
    b1 = build("deb/1", 1)
    cat = catalog(b1)
    store = FakeStore(universe={"r": cat})
    cfg = config(entry("r:deb/1", expires_after_days=400))
    converge(cfg, store, cat)
    assert store.images[b1.fingerprint].expires_at == b1.created_at + timedelta(days=400)  # type: ignore[operator]
    assert plan_for(cfg, store, cat).changes == ()


def test_pinned_fingerprint_holds_against_newer_build() -> None:
    b1, b2 = build("deb/1", 1), build("deb/1", 2)
    cat = catalog(b1, b2)
    store = FakeStore(universe={"r": cat})
    plan = converge(config(entry("r:deb/1", "pinned", fingerprint=b1.fingerprint)), store, cat)
    assert plan.changes[0].pull is not None
    assert plan.changes[0].pull.fingerprint == b1.fingerprint and plan.changes[0].pull.alias is None
    assert set(store.images) == {b1.fingerprint}
    assert store.images[b1.fingerprint].auto_update is False


def test_daemon_auto_update_followed_without_download() -> None:
    b1, b2 = build("deb/1", 1), build("deb/1", 2)
    cat = catalog(b1, b2)
    store = FakeStore(universe={"r": cat})
    cfg = config(entry("r:deb/1", "deb", auto_update=True, properties={"team": "web"}))
    converge(cfg, store, catalog(b1))
    # The daemon's auto-update: new build, aliases moved, properties replaced, old deleted.
    old = store.images.pop(b1.fingerprint)
    store.images[b2.fingerprint] = old.model_copy(update={
        "fingerprint": b2.fingerprint, "properties": dict(b2.properties)})
    store.aliases["deb"] = (b2.fingerprint, "")
    store.calls.clear()
    plan = converge(cfg, store, cat)
    assert actions(plan) == [("image.update", b2.fingerprint[:6])]
    assert not [c for c in store.calls if c.startswith("pull")]
    assert store.images[b2.fingerprint].properties["team"] == "web"


def test_alias_held_by_unmanaged_image_fails_or_is_taken() -> None:
    b1 = build("deb/1", 1)
    cat = catalog(b1)
    store = FakeStore(universe={"r": cat})
    store.put(image("e" * 64), "deb")
    with pytest.raises(ConflictError, match=r"alias 'deb' is held by image e{64}"):
        plan_for(config(entry("r:deb/1", "deb")), store, cat)
    converge(config(entry("r:deb/1", "deb"), alias_conflicts="take"), store, cat)
    assert store.aliases["deb"][0] == b1.fingerprint and "e" * 64 in store.images


def test_two_owners_share_a_store() -> None:
    a, b = build("deb/1", 1), build("alp/1", 1)
    cat = catalog(a, b)
    store = FakeStore(universe={"r": cat})
    web = config(entry("r:deb/1", "deb"), owner="web")
    db = config(entry("r:alp/1", "alp"), owner="db")
    converge(web, store, cat)
    converge(db, store, cat)
    assert plan_for(web, store, cat).changes == ()
    # db dropping everything deletes only db's image, never web's.
    plan = plan_for(config(owner="db"), store, cat, allow_empty=True)
    assert {c.fingerprint for c in plan.changes} == {b.fingerprint}
    with pytest.raises(ConflictError, match="owner 'web'"):
        plan_for(config(entry("r:deb/1", "other"), owner="db"), store, cat)
    with pytest.raises(ConflictError, match="alias 'deb' is managed by owner 'web'"):
        plan_for(config(entry("r:alp/1", "alp", "deb"), owner="db"), store, cat)


def test_empty_file_refused_until_allowed() -> None:
    cat = catalog(build("deb/1", 1))
    store = FakeStore(universe={"r": cat})
    converge(config(entry("r:deb/1", "deb")), store, cat)
    with pytest.raises(EmptyFileRefused, match="--allow-empty"):
        plan_for(config(), store, cat)
    plan = plan_for(config(), store, cat, allow_empty=True)
    assert [c.action.value for c in plan.changes] == ["image.delete"]


def test_adoption_of_unowned_image_with_resolved_fingerprint() -> None:
    b1 = build("deb/1", 1)
    cat = catalog(b1)
    store = FakeStore(universe={"r": cat})
    store.put(image(b1.fingerprint, profiles=("default",)))
    plan = converge(config(entry("r:deb/1", "deb")), store, cat)
    assert actions(plan) == [("image.adopt", b1.fingerprint[:6]), ("alias.create", "deb")]


def test_cached_copy_is_deleted_and_pulled_again() -> None:
    b1 = build("deb/1", 1)
    cat = catalog(b1)
    store = FakeStore(universe={"r": cat})
    store.put(image(b1.fingerprint, cached=True))
    plan = plan_for(config(entry("r:deb/1")), store, cat)
    assert plan.changes[0].replace_cached is True
    apply(config(entry("r:deb/1")), store, cat, plan)
    assert store.images[b1.fingerprint].cached is False


def test_properties_merged_and_dropped_keys_removed() -> None:
    b1 = build("deb/1", 1)
    cat = catalog(b1)
    store = FakeStore(universe={"r": cat})
    converge(config(entry("r:deb/1", properties={"team": "web", "tier": "1"})), store, cat)
    assert store.images[b1.fingerprint].properties["os"] == "deb"
    converge(config(entry("r:deb/1", properties={"team": "db"})), store, cat)
    props = store.images[b1.fingerprint].properties
    assert props["team"] == "db" and "tier" not in props and props["os"] == "deb"


def test_server_settings_and_other_owner_conflict() -> None:
    cat = catalog(build("deb/1", 1))
    store = FakeStore(universe={"r": cat})
    plan = converge(config(entry("r:deb/1"), server={"images.auto_update_interval": "12"}),
                    store, cat)
    assert next(c.action.value for c in plan.changes) == "server.update"
    assert store.config["images.auto_update_interval"] == "12"
    with pytest.raises(ConflictError, match="set to '12' by owner 'incus-images'"):
        plan_for(config(owner="other", server={"images.auto_update_interval": "3"}), store, cat)


def test_unknown_remote_alias_is_a_plan_error() -> None:
    cat = catalog(build("deb/1", 1))
    with pytest.raises(PlanError, match="no container image 'nope/1'"):
        plan_for(config(entry("r:nope/1")), FakeStore(universe={"r": cat}), cat)


def test_foreign_architecture_pulls_long_alias() -> None:
    arm = build("deb/1", 1, arch="aarch64")
    cat = catalog(arm)
    plan = plan_for(config(entry("r:deb/1", architecture="aarch64")),
                    FakeStore(universe={"r": cat}), cat)
    assert plan.changes[0].pull is not None and plan.changes[0].pull.alias == "deb/1/arm64"


def test_cached_policy_deletes_old_unused_cached_images_only() -> None:
    cat = catalog(build("deb/1", 1))
    store = FakeStore(universe={"r": cat})
    old = NOW - timedelta(days=40)
    store.put(image("c" * 64, cached=True, last_used_at=old))
    store.put(image("d" * 64, cached=True, last_used_at=NOW - timedelta(days=2)))
    store.put(image("e" * 64, cached=False, uploaded_at=old))
    cfg = config(entry("r:deb/1"))
    cfg = cfg.model_copy(update={"policy": cfg.policy.model_copy(update={
        "cached": cfg.policy.cached.model_copy(update={"delete_unused_after_days": 30})})})
    plan = converge(cfg, store, cat)
    assert ("image.delete", "cccccc") in actions(plan)
    assert {"d" * 64, "e" * 64} <= set(store.images)


def test_killed_apply_converges_on_rerun() -> None:
    b1, b2 = build("deb/1", 1), build("deb/1", 2)
    cat = catalog(b1, b2)
    store = FakeStore(universe={"r": cat})
    cfg = config(entry("r:deb/1", "deb", "debian"))
    converge(cfg, store, catalog(b1))
    plan = plan_for(cfg, store, cat)
    # Simulate a kill after the download and one alias move, before the record was written.
    store.images[b2.fingerprint] = store.images[b1.fingerprint].model_copy(
        update={"fingerprint": b2.fingerprint})
    store.aliases["deb"] = (b2.fingerprint, "")
    assert plan.changes
    plan2 = converge(cfg, store, cat)
    assert ("image.adopt", b2.fingerprint[:6]) in actions(plan2)
    assert set(store.images) == {b2.fingerprint}
    assert store.aliases == {"deb": (b2.fingerprint, ""), "debian": (b2.fingerprint, "")}


def test_kill_after_a_stale_pull_leaves_no_stray_build() -> None:
    """A stale alias pull landed an old build that apply would delete; the apply was
    killed first.  The in-flight marker makes that build this owner's, so the next
    plan deletes it, and the final record write clears the marker."""
    b0, b1, b2 = build("deb/1", 0), build("deb/1", 1), build("deb/1", 2)
    cat = catalog(b0, b1, b2)
    store = FakeStore(universe={"r": cat})
    cfg = config(entry("r:deb/1", "deb"))
    converge(cfg, store, catalog(b0, b1))
    # The pull by alias that apply starts: marker first, then the daemon's stale index
    # lands b0 (not in the store), then the kill.
    key = inventory_key("incus-images", "default")
    inv = decode("incus-images", "default", store.config[key])
    rec = inv.images[b1.fingerprint]
    marker = PendingPull(server=cat.url, alias="deb/1", record=rec, before=())
    store.config[key] = encode(inv.model_copy(update={"pending": (marker,)}))
    store.put(image(b0.fingerprint, update_source=UpdateSource(
        server=cat.url, protocol="simplestreams", alias="deb/1")))
    plan = plan_for(cfg, store, cat)
    assert ("image.delete", b0.fingerprint[:6]) in actions(plan)
    converge(cfg, store, cat)
    assert set(store.images) == {b2.fingerprint}
    assert decode("incus-images", "default", store.config[key]).pending == ()


def test_an_image_pulled_before_the_marker_stays_nobodys() -> None:
    b0, b1 = build("deb/1", 0), build("deb/1", 1)
    cat = catalog(b0, b1)
    store = FakeStore(universe={"r": cat})
    source = UpdateSource(server=cat.url, protocol="simplestreams", alias="deb/1")
    store.put(image(b0.fingerprint, update_source=source), "by-hand")
    marker = PendingPull(server=cat.url, alias="deb/1", before=(b0.fingerprint,),
                         record=RecordedImage(source="r:deb/1", architecture="x86_64"))
    store.config[inventory_key("incus-images", "default")] = encode(Inventory(
        owner="incus-images", project="default", pending=(marker,)))
    plan = plan_for(config(entry("r:deb/1", "deb")), store, cat)
    assert b0.fingerprint not in {c.fingerprint for c in plan.changes}
    assert [u.fingerprint for u in plan.untouched] == [b0.fingerprint]


def test_apply_clears_its_in_flight_marker() -> None:
    b1 = build("deb/1", 1)
    cat = catalog(b1)
    store = FakeStore(universe={"r": cat})
    seen: list[int] = []
    original = store.pull_image

    def watching(*args: object, **kwargs: object) -> str:
        inv = decode("incus-images", "default",
                     store.config[inventory_key("incus-images", "default")])
        seen.append(len(inv.pending))
        return original(*args, **kwargs)  # type: ignore[arg-type]

    store.pull_image = watching  # type: ignore[method-assign]
    converge(config(entry("r:deb/1", "deb")), store, cat)
    assert seen == [1]
    assert '"pending"' not in store.config[inventory_key("incus-images", "default")]
