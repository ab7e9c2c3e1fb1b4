"""Ownership records: encoding is stable, decoding is forgiving and compare-and-swap retries."""

from __future__ import annotations

import json

from reconciler.core.inventory import (
    decode,
    encode,
    parse_config,
    update_inventory,
    with_inventories,
)
from reconciler.model.observed import Inventory, RecordedImage, inventory_key
from tests.support.fakes import FakeStore

FP = "a" * 64


def test_encode_is_stable_and_round_trips() -> None:
    inv = Inventory(owner="web", project="default",
                    images={FP: RecordedImage(source="r:deb/1", aliases=("deb",))})
    assert encode(inv) == encode(decode("web", "default", encode(inv)))
    assert decode("web", "default", encode(inv)) == inv


def test_keys_from_a_newer_version_do_not_lose_ownership() -> None:
    text = json.dumps({"images": {FP: {"source": "r:deb/1", "aliases": ["deb"],
                                       "future_field": 1}}, "future": True})
    assert decode("web", "default", text).images[FP].aliases == ("deb",)


def test_unreadable_record_is_empty_not_a_crash() -> None:
    assert decode("web", "default", "{not json").images == {}
    assert decode("web", "default", '{"images":' + "[" * 100_000 + "]" * 100_000 + "}").images == {}


def test_parse_config_splits_inventories_by_project_and_skips_the_lease() -> None:
    config = {inventory_key("web", "default"): encode(Inventory(owner="web", project="default")),
              inventory_key("db", "other"): "{}", "user.incus-images.lease": "{}",
              "images.auto_update_interval": "6"}
    plain, inventories = parse_config(config, "default")
    assert plain == {"images.auto_update_interval": "6"}
    assert list(inventories) == ["web"]


def test_with_inventories_reads_the_effective_projects_records_out_of_an_observation() -> None:
    """A store reports its whole server config; the core reads the records in it, for
    the project whose images the target really uses, and only once."""
    web = Inventory(owner="web", project="default", images={FP: RecordedImage(source="r:a")})
    store = FakeStore(project="shared")
    store.config = {inventory_key("web", "default"): encode(web),
                    inventory_key("db", "shared"): "{}", "user.incus-images.lease": "{}",
                    "images.auto_update_interval": "12"}
    raw = store.observe().model_copy(update={"effective_project": "default"})
    assert raw.inventories == {}
    state = with_inventories(raw)
    assert state.inventories == {"web": web}
    assert state.server_config == {"images.auto_update_interval": "12"}
    assert with_inventories(state) == state
    plain = FakeStore().observe()
    assert with_inventories(plain) is plain


def test_update_retries_when_another_writer_got_there_first() -> None:
    store = FakeStore()
    original = store.patch_server_config
    raced = {"done": False}

    def racing(changes: dict[str, str], etag: str) -> None:
        if not raced["done"]:
            raced["done"] = True
            original({"user.other": "x"}, etag)  # another writer bumps the ETag
        original(changes, etag)

    store.patch_server_config = racing  # type: ignore[method-assign]
    result = update_inventory(store, "web", "default", lambda inv: inv.model_copy(
        update={"images": {FP: RecordedImage(source="r:deb/1")}}))
    assert FP in result.images
    assert FP in decode("web", "default", store.config[inventory_key("web", "default")]).images
    assert store.config["user.other"] == "x"
