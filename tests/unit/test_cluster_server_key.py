"""``cluster.images_minimal_replica`` under ``server:``: accepted by ``validate`` (no
network), planned and applied like the ``images.*`` keys on a cluster, refused by
``plan`` on a standalone daemon with a line naming the key and the target."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from reconciler.apply.executor import apply_plan
from reconciler.core.freshness import select
from reconciler.core.inventory import with_inventories
from reconciler.core.planner import make_plan
from reconciler.desired.load import load_config
from reconciler.errors import PlanError, ValidationFailed
from reconciler.model.config import Config
from reconciler.model.observed import ClusterMember
from tests.support.builders import NOW, build, catalog, config, entry
from tests.support.constants import HEAD
from tests.support.fakes import FakeReader, FakeStore

KEY = "cluster.images_minimal_replica"
MEMBERS = (ClusterMember(name="m1"), ClusterMember(name="m2"), ClusterMember(name="m3"))


def _load(tmp_path: Path, value: str) -> Config:
    path = tmp_path / "images.yaml"
    path.write_text(HEAD + textwrap.dedent(f"""\
        server:
          {KEY}: {value}
        """), encoding="utf-8")
    return load_config(path, {})


@pytest.mark.parametrize("value", ["-1", "1", "3", "'2'", "12"])
def test_validate_accepts_the_key(tmp_path: Path, value: str) -> None:
    cfg = _load(tmp_path, value)
    assert cfg.server[KEY] == value.strip("'")


@pytest.mark.parametrize(("value", "why"), [
    ("0", "must be -1 (every member) or a number of members from 1 up, not 0"),
    ("-2", "must be -1 (every member) or a number of members from 1 up, not -2"),
    ("two", "must be a whole number, not 'two'"),
    ("true", "must be a whole number, not true"),
])
def test_validate_refuses_what_the_daemon_refuses(tmp_path: Path, value: str, why: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        _load(tmp_path, value)
    assert [d.message for d in info.value.diagnostics] == [f"server['{KEY}'] {why}"]


def test_other_cluster_keys_stay_refused(tmp_path: Path) -> None:
    path = tmp_path / "images.yaml"
    path.write_text(HEAD + "server:\n  cluster.offline_threshold: 30\n", encoding="utf-8")
    with pytest.raises(ValidationFailed) as info:
        load_config(path, {})
    assert info.value.diagnostics[0].message.endswith(
        "only images.* settings and cluster.images_minimal_replica can be managed")


def test_plan_refuses_the_key_on_a_standalone_daemon() -> None:
    cat = catalog(build("deb/1", 1))
    solo, cluster = FakeStore("solo", universe={"r": cat}), FakeStore("c", universe={"r": cat})
    cluster.members = MEMBERS
    cfg = config(entry("r:deb/1"), targets=("c", "solo"), server={KEY: "2"})
    states = {s.target: s.observe() for s in (solo, cluster)}
    with pytest.raises(PlanError) as info:
        make_plan(cfg, {"r": cat}, states, now=NOW)
    assert str(info.value) == (
        f"target 'solo': server key {KEY} applies to clusters only, and the daemon is not "
        f"clustered: remove {KEY} from `server:`, or this target from the file")


def test_on_a_cluster_the_key_is_planned_applied_and_recorded_for_freshness() -> None:
    cat = catalog(build("deb/1", 1))
    store = FakeStore("c", universe={"r": cat})
    store.members = MEMBERS
    cfg = config(entry("r:deb/1"), targets=("c",), server={KEY: "-1"})
    plan = make_plan(cfg, {"r": cat}, {"c": store.observe()}, now=NOW)
    update = next(c for c in plan.changes if c.action.value == "server.update")
    assert update.fields is not None
    assert (update.fields[KEY].from_, update.fields[KEY].to) == ("3", "-1")  # daemon default 3
    result = apply_plan(plan, stores={"c": store}, reader=FakeReader({"r": cat}),
                        remotes=cfg.remotes)
    assert result.ok, [o.message for o in result.failed]
    assert store.config[KEY] == "-1"
    again = make_plan(cfg, {"r": cat}, {"c": store.observe()}, now=NOW)
    assert again.changes == ()
    snapshot = select(with_inventories(store.observe()), plan, cfg)
    assert snapshot.server[KEY] == "-1"  # a saved plan goes stale when someone changes it
