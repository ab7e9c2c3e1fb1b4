"""``status`` shaping: pure, on TargetState values; JSON against the committed schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import jsonschema

from reconciler.core.status import shape
from reconciler.model import schemas
from reconciler.model.lock import LockedBuild, LockKey, Locks
from reconciler.model.observed import (
    Inventory,
    ObservedAlias,
    ObservedImage,
    RecordedImage,
    TargetState,
    UpdateSource,
)
from reconciler.render.status import render_json, render_text
from tests.support.builders import REMOTE_URL, build, catalog, config, entry

B1, B2 = build("deb/1", 1), build("deb/1", 2)
P1 = build("pin/1", 1)
USED = datetime(2026, 11, 1, 8, 30, tzinfo=UTC)


def img(fp: str, *aliases: str, **kw: Any) -> ObservedImage:
    return ObservedImage.model_validate({
        "fingerprint": fp, "architecture": "x86_64", "size": 1234,
        "aliases": tuple(ObservedAlias(name=a, target=fp) for a in aliases), **kw})


def state(*images: ObservedImage, inventories: dict[str, Inventory] | None = None
          ) -> TargetState:
    return TargetState(target="local", project="default", effective_project="default",
                       host_architecture="x86_64", images=images,
                       inventories=inventories or {})


def inv(owner: str, **records: RecordedImage) -> Inventory:
    return Inventory(owner=owner, project="default", images=records)


def rec(source: str, *aliases: str) -> RecordedImage:
    return RecordedImage(source=source, architecture="x86_64", aliases=aliases)


def by_fp(report: Any) -> dict[str, Any]:
    return {i["fingerprint"]: i for i in report.to_json_dict()["targets"]["local"]["images"]}


CFG = config(entry("r:deb/1", "deb", auto_update=True),
             entry("r:pin/1", "pin", fingerprint=P1.fingerprint))
SRC = UpdateSource(server=REMOTE_URL, protocol="simplestreams", alias="deb/1")


def world() -> TargetState:
    other = "9" * 64
    cached = "c" * 64
    hand = "d" * 64
    return state(
        img(B1.fingerprint, "deb", auto_update=True, update_source=SRC, last_used_at=USED),
        img(P1.fingerprint, "pin"),
        img(other, "web-img"),
        img(cached, cached=True, update_source=UpdateSource(
            server="https://elsewhere.test/", protocol="simplestreams", alias="alpine/3.20")),
        img(hand, "by-hand"),
        inventories={
            "incus-images": inv("incus-images", **{B1.fingerprint: rec("r:deb/1", "deb"),
                                                   P1.fingerprint: rec("r:pin/1", "pin")}),
            "web": inv("web", **{other: rec("r:web/1", "web-img")}),
        })


def test_every_image_with_owner_source_and_managed_flag() -> None:
    report = shape(CFG, {"local": world()}, {"r": catalog(B1, B2, P1)}, None)
    images = by_fp(report)
    assert len(images) == 5
    mine = images[B1.fingerprint]
    assert mine == {
        "fingerprint": B1.fingerprint, "managed": True, "owner": "incus-images",
        "cached": False, "aliases": ["deb"], "source": "r:deb/1", "auto_update": True,
        "expires_at": None, "last_used_at": "2026-11-01T08:30:00Z", "size": 1234,
        "update_available": True}
    assert images["9" * 64]["managed"] is False and images["9" * 64]["owner"] == "web"
    assert images["9" * 64]["source"] is None  # no daemon-recorded source
    cached = images["c" * 64]
    assert (cached["owner"], cached["cached"], cached["source"]) == (
        None, True, "https://elsewhere.test:alpine/3.20")
    assert cached["update_available"] is None  # not a declared remote: unknown
    assert images["d" * 64]["owner"] is None and images["d" * 64]["update_available"] is None
    # This owner's images come first.
    order = [i.fingerprint for i in report.targets["local"].images]
    assert order[:2] == [B1.fingerprint, P1.fingerprint]  # by source: deb, pin


def test_pinned_matches_its_pin_and_offline_is_unknown() -> None:
    report = shape(CFG, {"local": world()}, {"r": catalog(B1, B2, P1)}, None)
    assert by_fp(report)[P1.fingerprint]["update_available"] is False
    offline = shape(CFG, {"local": world()}, None, None)
    assert {i["update_available"] for i in by_fp(offline).values()} == {None}


def test_locked_entry_matching_its_lock_has_no_update() -> None:
    locks: Locks = {LockKey("local", "r:deb/1", "container", "x86_64"):
                    LockedBuild(fingerprint=B1.fingerprint, version=B1.version)}
    report = shape(CFG, {"local": world()}, {"r": catalog(B1, B2, P1)}, locks)
    assert by_fp(report)[B1.fingerprint]["update_available"] is False
    ahead: Locks = {LockKey("local", "r:deb/1", "container", "x86_64"):
                    LockedBuild(fingerprint=B2.fingerprint, version=B2.version)}
    moved = shape(CFG, {"local": world()}, {"r": catalog(B1, B2, P1)}, ahead)
    assert by_fp(moved)[B1.fingerprint]["update_available"] is True


def test_newest_build_is_up_to_date() -> None:
    report = shape(CFG, {"local": world()}, {"r": catalog(B1, P1)}, None)
    assert by_fp(report)[B1.fingerprint]["update_available"] is False


def test_unmanaged_image_with_a_source_on_a_declared_remote() -> None:
    hand = img(B1.fingerprint, "by-hand", update_source=SRC)
    report = shape(CFG, {"local": state(hand)}, {"r": catalog(B1, B2)}, None)
    (only,) = by_fp(report).values()
    assert (only["managed"], only["source"], only["update_available"]) == (
        False, "r:deb/1", True)


class _Recorded:
    """A record with provenance, as a newer inventory holds it (duck-typed: status reads
    ``record.provenance`` or flat ``commit``/``repository`` attributes with getattr)."""

    def __init__(self, record: RecordedImage, **extra: Any) -> None:
        self._record = record
        self.__dict__.update(extra)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._record, name)


def with_record(record: Any) -> TargetState:
    inventory = Inventory.model_construct(owner="incus-images", project="default",
                                          images={B1.fingerprint: record}, server={})
    return state(img(B1.fingerprint, "deb")).model_copy(
        update={"inventories": {"incus-images": inventory}})


def test_provenance_is_shown_when_the_record_has_it() -> None:
    nested = _Recorded(rec("r:deb/1", "deb"), provenance=SimpleNamespace(
        commit="abc123", repository="https://git.test/repo", path="images.yaml", dirty=True))
    report = shape(CFG, {"local": with_record(nested)}, None, None)
    assert by_fp(report)[B1.fingerprint]["provenance"] == {
        "commit": "abc123", "repository": "https://git.test/repo", "path": "images.yaml",
        "dirty": True}
    assert ("provenance: https://git.test/repo @ abc123 (uncommitted changes) images.yaml"
            in render_text(report))
    flat = _Recorded(rec("r:deb/1", "deb"), commit="def456", repository="/srv/repo")
    prov = by_fp(shape(CFG, {"local": with_record(flat)}, None, None))[B1.fingerprint]
    assert prov["provenance"] == {"commit": "def456", "repository": "/srv/repo",
                                  "path": None, "dirty": None}
    plain = shape(CFG, {"local": world()}, None, None)
    assert "provenance" not in by_fp(plain)[B1.fingerprint]


def test_json_validates_against_the_status_schema_and_text_lists_everything() -> None:
    report = shape(CFG, {"local": world(), "prod": state().model_copy(
        update={"target": "prod", "project": "web"})}, {"r": catalog(B1, B2, P1)}, None)
    data = json.loads(render_json(report))
    jsonschema.validate(data, schemas.status_schema())
    assert set(data) == {"targets"} and data["targets"]["prod"] == {"project": "web",
                                                                    "images": []}
    text = render_text(report)
    assert text.startswith("Target local (project default): 5 images\n  FINGERPRINT")
    assert f"{B1.fingerprint[:12]}  incus-images (this file)" in text
    assert "nobody (cached)" in text and "Target prod (project web): 0 images" in text


def test_status_uses_the_same_attribution_as_the_planner_for_auto_updated_images() -> None:
    # The daemon moved alias "deb" to B2 and deleted B1: B2 is still this owner's.
    st = state(img(B2.fingerprint, "deb", auto_update=True, update_source=SRC),
               inventories={"incus-images": inv("incus-images",
                                                **{B1.fingerprint: rec("r:deb/1", "deb")})})
    report = shape(CFG, {"local": st}, {"r": catalog(B1, B2)}, None)
    (only,) = by_fp(report).values()
    assert (only["managed"], only["source"], only["update_available"]) == (
        True, "r:deb/1", False)
