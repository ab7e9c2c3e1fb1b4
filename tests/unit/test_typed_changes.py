"""Typed changes (reconciler.model.changes): the wire JSON is unchanged, the types are strict.

The golden plans (tests/golden/data/*.plan.json) hold every action the planner
makes; each of their changes must read as its action's typed change and write
back byte for byte.  A change missing a required field is refused: by ``typed``
(apply fails it) and by ``planfile.parse`` (the saved plan is not loaded).  A
field its action does not use is left out of the typed change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.adapters import planfile
from reconciler.core import seal as sealing
from reconciler.errors import PlanError, PlanFileError
from reconciler.model.changes import (
    FAMILIES,
    AliasCreate,
    AliasDelete,
    ImageDelete,
    ImageDownload,
    typed,
)
from reconciler.model.observed import RecordedImage
from reconciler.model.plan import Action, Change, Plan, PullSource, Writable
from reconciler.model.result import Status
from tests.support.builders import build, catalog, config, entry
from tests.support.fakes import FakeReader, FakeStore

GOLDEN = sorted((Path(__file__).parents[1] / "golden" / "data").glob("*.plan.json"))


def _changes(path: Path) -> list[dict[str, Any]]:
    return list(json.loads(path.read_text())["changes"])


def test_the_golden_plans_hold_every_typed_family() -> None:
    seen = {c["action"] for p in GOLDEN for c in _changes(p)}
    assert seen == {a.value for a in FAMILIES}


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.name)
def test_every_golden_change_reads_typed_and_writes_back_byte_for_byte(path: Path) -> None:
    for raw in _changes(path):
        wire = Change.model_validate(raw)
        t = typed(wire)
        assert type(t) is FAMILIES[wire.action]
        assert t.wire() == wire
        assert typed(t.wire()) == t
        again = Plan(changes=(t.wire(),)).to_json_dict()["changes"][0]
        assert json.dumps(again) == json.dumps(raw)  # same keys, same order, same omissions


def test_required_fields_are_required() -> None:
    with pytest.raises(ValueError, match="alias"):
        AliasCreate(target="t", project="p", reason="r", to="f", description="")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="from_"):
        AliasDelete(target="t", project="p", reason="r", alias="a")  # type: ignore[call-arg]


def _wire(action: Action, **kw: Any) -> Change:
    return Change(action=action, target="local", project="default", reason="r", **kw)


@pytest.mark.parametrize(("change", "message"), [
    (_wire(Action.ALIAS_CREATE, to="f" * 64, description=""),
     "target 'local': alias.create: alias: field required"),
    (_wire(Action.ALIAS_DELETE, alias="a"), "target 'local': alias.delete: from_: field required"),
    (_wire(Action.IMAGE_REFRESH, fingerprint="f" * 64),
     "target 'local': image.refresh is not supported"),
])
def test_a_change_that_does_not_fit_its_action_is_refused(change: Change, message: str) -> None:
    with pytest.raises(PlanError) as caught:
        typed(change)
    assert str(caught.value) == message


def test_a_field_the_action_does_not_use_is_left_out() -> None:
    change = _wire(Action.IMAGE_DELETE, fingerprint="f" * 64, alias="a", instances=[])
    assert typed(change) == ImageDelete(target="local", project="default", reason="r",
                                        fingerprint="f" * 64)


def test_the_defaults_write_what_the_planner_always_wrote() -> None:
    """``replace_cached`` False is left out; an image.delete always lists its instances."""
    pull = PullSource(remote="r", server="https://x.test", protocol="simplestreams", alias="a")
    writable = Writable(auto_update=True, public=False, profiles=("default",))
    dl = ImageDownload(target="t", project="p", reason="r", fingerprint="f" * 64, source="r:a",
                       size=1, pull=pull, writable=writable, record=RecordedImage(source="r:a"))
    assert "replace_cached" not in Plan(changes=(dl.wire(),)).to_json_dict()["changes"][0]
    assert dl.model_copy(update={"replace_cached": True}).wire().replace_cached is True
    gone = ImageDelete(target="t", project="p", reason="r", fingerprint="f" * 64)
    assert Plan(changes=(gone.wire(),)).to_json_dict()["changes"][0]["instances"] == []


def test_apply_fails_a_change_that_does_not_fit_attempting_nothing() -> None:
    from reconciler.apply.executor import apply_plan

    b1 = build("deb/1", 1)
    cat = catalog(b1)
    store = FakeStore(universe={"r": cat})
    cfg = config(entry("r:deb/1", "deb"))
    bad = _wire(Action.ALIAS_CREATE, to=b1.fingerprint, description="")  # no alias
    result = apply_plan(Plan(changes=(bad,)), stores={"local": store},
                        reader=FakeReader({"r": cat}), remotes=cfg.remotes)
    assert [(o.status, o.message) for o in result.outcomes] == [
        (Status.FAILED, "target 'local': alias.create: alias: field required")]
    assert store.aliases == {} and store.images == {}


def test_a_saved_plan_whose_change_does_not_fit_its_action_is_not_loaded() -> None:
    plan = Plan.model_validate(json.loads((GOLDEN[0].parent / "first-download.plan.json")
                                          .read_text()))
    i = next(i for i, c in enumerate(plan.changes) if c.action is Action.ALIAS_CREATE)
    bad = plan.changes[i].model_copy(update={"alias": None})
    changes = (*plan.changes[:i], bad, *plan.changes[i + 1:])
    good = json.dumps(sealing.seal(plan).to_json_dict()).encode()
    assert planfile.parse(good, "p.json") == sealing.seal(plan)
    text = json.dumps(sealing.seal(plan.model_copy(update={"changes": changes})).to_json_dict())
    with pytest.raises(PlanFileError) as caught:
        planfile.parse(text.encode(), "p.json")
    assert str(caught.value) == (f"p.json is not a valid saved plan: changes[{i}]: "
                                 "target 'local': alias.create: alias: field required")
