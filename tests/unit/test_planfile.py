"""Saved plans: digest, save/load with every way a file can be bad, and staleness."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reconciler.adapters import planfile
from reconciler.core import freshness
from reconciler.core import seal as sealing
from reconciler.core.inventory import encode, with_inventories
from reconciler.core.planner import make_plan
from reconciler.errors import PlanFileError, StalePlan
from reconciler.model.config import Config
from reconciler.model.observed import Inventory, RecordedImage, inventory_key
from reconciler.model.plan import Plan
from reconciler.model.remote import RemoteCatalog
from reconciler.render import json as json_render
from reconciler.render.saved import describe
from tests.support.builders import NOW, build, catalog, config, entry, image
from tests.support.fakes import FakeStore

B1, B2 = build("deb/1", 1), build("deb/1", 2)


def saveable(cfg: Config, store: FakeStore, cat: RemoteCatalog) -> Plan:
    """What ``pipeline.saveable`` makes, without git: observed, file digest, sealed."""
    state = with_inventories(store.observe())
    plan = make_plan(cfg, {"r": cat}, {store.target: state}, now=NOW)
    observed = {t: freshness.select(state, plan, cfg) for t in freshness.touched(plan)}
    return sealing.seal(plan.model_copy(update={
        "created_at": NOW, "desired_digest": cfg.digest, "observed": observed}))


@pytest.fixture
def world() -> tuple[Config, FakeStore, RemoteCatalog]:
    """deb/1 build 1 applied by hand-made records, build 2 upstream: a plan with every kind."""
    cat = catalog(B1, B2)
    store = FakeStore(universe={"r": cat})
    store.put(image(B1.fingerprint, properties={"team": "web"}, created_at=B1.created_at),
              "deb", "old")
    store.put(image("c" * 64, cached=True), "cached-alias")
    store.put(image("d" * 64), "theirs")
    rec = RecordedImage(source="r:deb/1", architecture="x86_64", aliases=("deb", "old"))
    store.config[inventory_key("incus-images", "default")] = encode(
        Inventory(owner="incus-images", project="default", images={B1.fingerprint: rec}))
    store.config[inventory_key("other", "default")] = encode(
        Inventory(owner="other", project="default",
                  images={"d" * 64: RecordedImage(source="x:y", aliases=("theirs",))}))
    store.config["images.auto_update_interval"] = "6"
    store.config["core.https_address"] = "127.0.0.1:8443"
    cfg = config(entry("r:deb/1", "deb", "new", properties={"team": "web"}))
    return cfg, store, cat


World = tuple[Config, FakeStore, RemoteCatalog]


# -- digest ---------------------------------------------------------------------------------

def test_digest_covers_everything_but_itself(world: World) -> None:
    plan = saveable(*world)
    assert plan.digest == sealing.digest_of(plan.to_json_dict())
    assert sealing.seal(plan) == plan
    data = plan.to_json_dict()
    assert sealing.canonical(data) == sealing.canonical({**data, "digest": "x"})
    for key, value in (("owner", "someone"), ("changes", []), ("observed", {})):
        assert sealing.digest_of({**data, key: value}) != plan.digest


def test_what_a_plan_records(world: World) -> None:
    plan = saveable(*world)
    assert [c.action.value for c in plan.changes] == [
        "image.download", "alias.create", "alias.move", "image.delete"]
    assert plan.observed is not None
    snap = plan.observed["local"]
    # Managed and touched images; the daemon-cached and the other owner's are not recorded.
    assert set(snap.images) == {B1.fingerprint, B2.fingerprint}
    assert snap.images[B2.fingerprint] is None  # to be downloaded: recorded as absent
    b1 = snap.images[B1.fingerprint]
    assert b1 is not None and b1.properties == {"team": "web"}
    # Declared, touched and inventory aliases; not the other owner's or the cached image's.
    assert snap.aliases == {"deb": B1.fingerprint, "new": None, "old": B1.fingerprint}
    assert snap.inventory.owner == "incus-images" and B1.fingerprint in snap.inventory.images
    assert snap.server == {"images.auto_update_interval": "6"}
    assert plan.desired_digest == "0" * 64


# -- save / load ------------------------------------------------------------------------------

def test_save_then_load_is_the_same_plan(world: World, tmp_path: Path) -> None:
    plan = saveable(*world)
    path = tmp_path / "plan.json"
    saved = planfile.save(plan.model_copy(update={"digest": None}), path)
    assert saved == plan
    assert path.read_text() == json_render.render_plan(plan)
    assert planfile.load(path) == plan
    assert [p.name for p in tmp_path.iterdir()] == ["plan.json"]  # no temporary file left


def test_save_into_a_missing_directory_is_an_expected_error(world: World,
                                                             tmp_path: Path) -> None:
    with pytest.raises(PlanFileError, match=r"cannot write the plan to .*/nope/plan\.json"):
        planfile.save(saveable(*world), tmp_path / "nope" / "plan.json")


def resealed(data: dict[str, Any]) -> bytes:
    return json.dumps({**data, "digest": sealing.digest_of(data)}).encode()


def good(world: World) -> dict[str, Any]:
    return saveable(*world).to_json_dict()


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: json.dumps(d).encode()[:200],
     r"^p\.json is not a saved plan: invalid JSON at line 1 column \d+ .*; was it truncated\?$"),
    (lambda d: b"", r"invalid JSON at line 1 column 1 .*truncated"),
    (lambda d: b"\xff\xfe{}", r"^p\.json is not a saved plan: it is not UTF-8 text$"),
    (lambda d: b"[1, 2]", r"^p\.json is not a saved plan: expected a JSON object, found list$"),
    (lambda d: b'{"hello": "world"}',
     r"^p\.json is not a saved plan of format version 1 \(format_version: none\)$"),
    (lambda d: json.dumps({**d, "format_version": "2"}).encode(),
     r"format_version: '2'"),
    (lambda d: json.dumps({k: v for k, v in d.items() if k != "digest"}).encode(),
     r"^p\.json has no digest: only a plan written by `incus-images plan --out FILE`"),
    (lambda d: json.dumps({**d, "owner": "intruder"}).encode(),
     r"^p\.json has been edited since it was saved: its content does not match its digest"),
    (lambda d: json.dumps(d).encode().replace(b'"image.delete"', b'"image.download"'),
     r"has been edited since it was saved"),
    (lambda d: json.dumps({**d, "summary": {"actions": {}, "download_bytes": float("nan")}}
                          ).encode(), r"is not a saved plan|edited"),
    (lambda d: resealed({**d, "surprise": 1}),
     r"^p\.json is not a valid saved plan: the document: Additional properties are not "
     r"allowed \('surprise' was unexpected\)$"),
    (lambda d: resealed({**d, "changes": [{**d["changes"][0], "action": "image.nuke"}]}),
     r"^p\.json is not a valid saved plan: changes\[0\]\.action: 'image\.nuke' is not one "
     r"of \['server\.update'"),
])
def test_bad_files_are_rejected_with_one_clear_line(world: World, tmp_path: Path,
                                                    make: Any, message: str) -> None:
    path = tmp_path / "p.json"
    path.write_bytes(make(good(world)))
    with pytest.raises(PlanFileError, match=message) as caught:
        planfile.parse(path.read_bytes(), "p.json")
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 400


def test_a_missing_file_is_an_expected_error(tmp_path: Path) -> None:
    with pytest.raises(PlanFileError, match=r"cannot read the plan .*/x\.json: No such file"):
        planfile.load(tmp_path / "x.json")


def test_describe_names_owner_time_and_source(world: World) -> None:
    plan = saveable(*world)
    assert describe(plan) == ("Saved plan of owner 'incus-images', made "
                                       "2026-11-27T12:00:00Z, from a file with sha256 "
                                       "000000000000.")


# -- does it still hold? ------------------------------------------------------------------

def fresh(plan: Plan, store: FakeStore) -> list[str]:
    assert plan.observed is not None
    before = plan.observed[store.target]
    state = with_inventories(store.observe())
    after = freshness.take(state, plan.owner, before.images, before.aliases)
    return freshness.differences(before, after)


def test_unrelated_changes_do_not_make_a_plan_stale(world: World) -> None:
    cfg, store, cat = world
    plan = saveable(cfg, store, cat)
    b1 = store.images[B1.fingerprint]
    store.images[B1.fingerprint] = b1.model_copy(update={"last_used_at": NOW})
    store.images["c" * 64] = store.images["c" * 64].model_copy(update={"public": True})
    store.put(image("e" * 64, cached=True), "new-cached")
    store.images["d" * 64] = store.images["d" * 64].model_copy(update={"properties": {"x": "1"}})
    store.config[inventory_key("other", "default")] = encode(
        Inventory(owner="other", project="default"))
    store.config[inventory_key("incus-images", "web")] = encode(
        Inventory(owner="incus-images", project="web"))
    store.config["core.https_address"] = "[::]:8443"
    store.config["user.incus-images.lease"] = "{}"
    assert fresh(plan, store) == []
    freshness.check_fresh(plan, {"local": with_inventories(store.observe())},
                          "p.json")


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda s: s.aliases.update({"deb": ("d" * 64, "")}),
     f"alias 'deb' moved from {B1.fingerprint[:12]} to dddddddddddd"),
    (lambda s: s.aliases.update({"new": ("d" * 64, "")}),
     "alias 'new' was created (on dddddddddddd)"),
    (lambda s: s.aliases.pop("old"), f"alias 'old' was deleted (was on {B1.fingerprint[:12]})"),
    (lambda s: s.images.update({B1.fingerprint: s.images[B1.fingerprint].model_copy(
        update={"properties": {"team": "ops"}, "public": True})}),
     f"image {B1.fingerprint[:12]}: public, properties changed"),
    (lambda s: s.images.update({B1.fingerprint: s.images[B1.fingerprint].model_copy(
        update={"expires_at": datetime(2030, 1, 1, tzinfo=UTC)})}),
     f"image {B1.fingerprint[:12]}: expires_at changed"),
    (lambda s: s.put(image(B2.fingerprint)), f"image {B2.fingerprint[:12]} has appeared"),
    (lambda s: s.delete_image(B1.fingerprint), f"image {B1.fingerprint[:12]} is gone"),
    (lambda s: s.config.update({"images.auto_update_interval": "12"}),
     "server setting images.auto_update_interval is '12' (was '6')"),
    (lambda s: s.config.update({"images.remote_cache_expiry": "3"}),
     "server setting images.remote_cache_expiry is '3' (was the default)"),
    (lambda s: s.config.update({inventory_key("incus-images", "default"): encode(
        Inventory(owner="incus-images", project="default"))}),
     "the ownership record of owner 'incus-images' changed (another apply ran?)"),
])
def test_what_makes_a_plan_stale(world: World, edit: Any, expected: str) -> None:
    cfg, store, cat = world
    plan = saveable(cfg, store, cat)
    edit(store)
    assert expected in fresh(plan, store)
    with pytest.raises(StalePlan) as caught:
        freshness.check_fresh(plan, {"local": with_inventories(store.observe())},
                          "p.json")
    lines = str(caught.value).splitlines()
    assert lines[0] == ("the saved plan p.json is stale: the stores changed since it was made; "
                        "nothing was changed; make a new plan")
    assert f"target 'local': {expected}" in lines[1:]


def test_plan_must_fit_the_file(world: World) -> None:
    cfg, store, cat = world
    plan = saveable(cfg, store, cat)
    freshness.check_matches(plan, cfg, "p.json")
    with pytest.raises(PlanFileError, match=r"made for owner 'incus-images', but images\.yaml "
                                            r"declares owner 'web'"):
        freshness.check_matches(plan, cfg.model_copy(update={"owner": "web"}), "p.json")
    with pytest.raises(StalePlan, match=r"^the saved plan p.json is stale: images.yaml has "
                                        r"changed since the plan was made"):
        freshness.check_matches(plan, cfg.model_copy(update={"digest": "1" * 64}), "p.json")
    with pytest.raises(PlanFileError, match=r"changes target 'local', which images\.yaml does "
                                            r"not declare"):
        freshness.check_matches(plan, cfg.model_copy(update={"targets": {}}), "p.json")
    with pytest.raises(PlanFileError, match="records neither"):
        freshness.check_matches(plan.model_copy(update={"observed": None}), cfg, "p.json")
    with pytest.raises(PlanFileError, match="records nothing it observed on target 'local'"):
        freshness.check_matches(plan.model_copy(update={"observed": {}}), cfg, "p.json")


def test_a_plan_without_changes_records_nothing() -> None:
    plan = saveable(config(), FakeStore(), catalog())
    assert (plan.changes, plan.observed) == ((), {})
    assert freshness.touched(plan) == []
    freshness.check_fresh(plan, {}, "p.json")
