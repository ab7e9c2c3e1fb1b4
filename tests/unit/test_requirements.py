"""Requirements preflight, instance impact and storage space (issue 4), on the pure core."""

from __future__ import annotations

import pytest

from reconciler.core.inventory import encode
from reconciler.core.planner import make_plan
from reconciler.core.requirements import check, from_properties
from reconciler.model.observed import Inventory, Profile, RecordedImage, inventory_key
from tests.support.builders import NOW, build, catalog, config, entry, image
from tests.support.fakes import FakeStore

NESTING = Profile(name="nesting", config={"security.nesting": "true"})
PRIV = Profile(name="priv", config={"security.privileged": "true"})
NOSB = Profile(name="nosb", config={"security.secureboot": "false"})
AGENT = Profile(name="agent", devices={"agent": {"type": "disk", "source": "agent:config"}})
ALL = {p.name: p for p in (Profile(name="default"), NESTING, PRIV, NOSB, AGENT)}


@pytest.mark.parametrize(("reqs", "type_", "profiles", "codes"), [
    ({"nesting": "true"}, "container", ["default"], ["requirements.nesting"]),
    ({"nesting": "true"}, "container", ["default", "nesting"], []),
    ({"privileged": "false"}, "container", ["default", "priv"], ["requirements.privileged"]),
    ({"privileged": "false"}, "container", ["default"], []),
    ({"secureboot": "false"}, "virtual-machine", ["default"], ["requirements.secureboot"]),
    ({"secureboot": "false"}, "virtual-machine", ["default", "nosb"], []),
    ({"secureboot": "false"}, "container", ["default"], []),
    ({"cdrom_agent": "true"}, "virtual-machine", ["default"], ["requirements.cdrom_agent"]),
    ({"cdrom_agent": "true"}, "virtual-machine", ["default", "agent"], []),
])
def test_rules(reqs: dict[str, str], type_: str, profiles: list[str], codes: list[str]) -> None:
    found, notes = check(reqs, type_=type_, profile_names=profiles, profiles=ALL,
                         kernel_cgroup=None)
    assert [f.code for f in found] == codes
    assert notes == []


def test_later_profile_overrides_earlier() -> None:
    off = Profile(name="off", config={"security.nesting": "false"})
    found, _ = check({"nesting": "true"}, type_="container", profile_names=["nesting", "off"],
                     profiles={**ALL, "off": off}, kernel_cgroup=None)
    assert [f.code for f in found] == ["requirements.nesting"]


def test_cgroup_v1_is_a_warning_on_v2_hosts_and_a_note_when_unknown() -> None:
    found, notes = check({"cgroup": "v1"}, type_="container", profile_names=["default"],
                         profiles=ALL, kernel_cgroup="v2")
    assert [f.code for f in found] == ["requirements.cgroup"] and notes == []
    found, notes = check({"cgroup": "v1"}, type_="container", profile_names=["default"],
                         profiles=ALL, kernel_cgroup=None)
    assert found == [] and "could not be checked" in notes[0]


def test_message_says_what_to_change() -> None:
    found, _ = check({"nesting": "true"}, type_="container", profile_names=["default"],
                     profiles=ALL, kernel_cgroup=None)
    assert found[0].message == (
        "instances need security.nesting=true; none of the profiles [default] sets it")


def test_from_properties() -> None:
    assert from_properties({"requirements.nesting": "true", "os": "x"}) == {"nesting": "true"}


def test_plan_warns_from_remote_requirements_before_download() -> None:
    b = build("nest/1", 1, requirements={"nesting": "true"})
    cat = catalog(b)
    store = FakeStore(universe={"r": cat})
    plan = make_plan(config(entry("r:nest/1")), {"r": cat}, {"local": store.observe()}, now=NOW)
    assert [(w.code, w.target, w.image) for w in plan.warnings] == [
        ("requirements.nesting", "local", "r:nest/1")]
    store.profiles["nesting"] = NESTING
    plan = make_plan(config(entry("r:nest/1", profiles=("default", "nesting"))), {"r": cat},
                     {"local": store.observe()}, now=NOW)
    assert plan.warnings == ()


def test_vm_requirement_checked_on_a_kept_image_from_its_properties() -> None:
    b = build("win/1", 1, type_="virtual-machine")
    cat = catalog(b)
    store = FakeStore(universe={"r": cat})
    store.put(image(b.fingerprint, type="virtual-machine",
                    properties={"requirements.secureboot": "false"}))
    plan = make_plan(config(entry("r:win/1", type="virtual-machine")), {"r": cat},
                     {"local": store.observe()}, now=NOW)
    assert [w.code for w in plan.warnings] == ["requirements.secureboot"]


def test_image_delete_lists_instances_created_from_it() -> None:
    a = build("deb/1", 1)
    cat = catalog(a)
    store = FakeStore(universe={"r": cat})
    store.put(image(a.fingerprint))
    store.config[inventory_key("incus-images", "default")] = encode(Inventory(
        owner="incus-images", project="default",
        images={a.fingerprint: RecordedImage(source="r:deb/1", architecture="x86_64")}))
    store.instances = {a.fingerprint: ("c1", "c2")}
    plan = make_plan(config(), {"r": cat}, {"local": store.observe()}, now=NOW, allow_empty=True)
    assert [(c.action.value, c.instances) for c in plan.changes] == [
        ("image.delete", ["c1", "c2"])]
    assert plan.to_json_dict()["changes"][0]["instances"] == ["c1", "c2"]


def test_storage_space_warning_only_when_exposed_and_short() -> None:
    b = build("deb/1", 1)
    cat = catalog(b)
    store = FakeStore(universe={"r": cat})
    cfg = config(entry("r:deb/1"))
    assert make_plan(cfg, {"r": cat}, {"local": store.observe()}, now=NOW).warnings == ()
    store.images_free_bytes = b.size - 1
    codes = [w.code for w in make_plan(cfg, {"r": cat}, {"local": store.observe()},
                                       now=NOW).warnings]
    assert codes == ["storage.space"]
    store.images_free_bytes = b.size
    assert make_plan(cfg, {"r": cat}, {"local": store.observe()}, now=NOW).warnings == ()
