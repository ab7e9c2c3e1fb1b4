"""Fleets: ``--parallelism N`` bounds how many targets are observed and applied at once,
results come in target order whatever finishes first, and one target that cannot be
reached fails alone: the others are planned and applied, the run exits 1 naming it.

Concurrency is measured with counters and barriers, never with timing: a
``threading.Barrier`` of N parties only opens when N observations run together,
and a counter records the most that ever ran at once.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from reconciler import pipeline
from reconciler.apply.executor import apply_plan
from reconciler.core.planner import make_plan
from reconciler.errors import StoreError
from reconciler.model.observed import TargetState
from reconciler.pipeline import observe_each
from tests.support.builders import NOW, build, catalog, config, entry
from tests.support.fakes import FakeReader, FakeStore
from tests.unit.test_cli import DEB_LINE, FULL, World

WAIT = 30.0
"""A safety net for a barrier that never opens (a bug); never reached when all is well."""


@pytest.fixture
def w(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
      capsys: pytest.CaptureFixture[str]) -> World:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    return World(root=tmp_path, capsys=capsys)


def _unreachable(w: World, target: str) -> None:
    """Every request to ``target``'s daemon fails, as when nothing listens there."""
    store = w.stores[target]

    def refuse(*_: object, **__: object) -> tuple[dict[str, str], str]:
        raise StoreError(target, "cannot connect to https://10.0.0.9:8443: connection refused")

    store.on_observe = refuse
    store.get_server_config = refuse  # type: ignore[method-assign]


class Gauge:
    """Counts observations running at once; ``barrier`` (if any) holds each until that
    many run together."""

    def __init__(self, parties: int | None = None) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.most = 0
        self.barrier = threading.Barrier(parties, timeout=WAIT) if parties else None

    def __enter__(self) -> None:
        with self.lock:
            self.active += 1
            self.most = max(self.most, self.active)
        if self.barrier is not None:
            self.barrier.wait()

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.active -= 1


class GaugedStore(FakeStore):
    def __init__(self, target: str, gauge: Gauge, **kw: object) -> None:
        super().__init__(target, **kw)  # type: ignore[arg-type]
        self.gauge = gauge

    def observe(self) -> TargetState:
        with self.gauge:
            return super().observe()


# -- the pipeline ---------------------------------------------------------------------------

@pytest.mark.parametrize("parallelism", [2, 3])
def test_observation_runs_exactly_parallelism_at_once(parallelism: int) -> None:
    gauge = Gauge(parties=parallelism)
    stores = {f"t{i}": GaugedStore(f"t{i}", gauge) for i in range(parallelism * 2)}
    states, failures = observe_each(stores, parallelism)
    assert failures == {} and list(states) == list(stores)
    assert gauge.most == parallelism  # the barrier proves >=, the counter <=


def test_parallelism_one_observes_one_at_a_time() -> None:
    gauge = Gauge()
    stores = {f"t{i}": GaugedStore(f"t{i}", gauge) for i in range(5)}
    observe_each(stores, 1)
    assert gauge.most == 1


def test_results_come_in_target_order_whatever_finishes_first() -> None:
    second_done = threading.Event()

    class Slow(FakeStore):
        def observe(self) -> TargetState:
            assert second_done.wait(WAIT)  # "a" finishes only after "b"
            return super().observe()

    class Fast(FakeStore):
        def observe(self) -> TargetState:
            try:
                return super().observe()
            finally:
                second_done.set()

    states, _ = observe_each({"a": Slow("a"), "b": Fast("b")}, 2)
    assert list(states) == ["a", "b"]


def test_one_failing_target_is_set_aside_with_its_error() -> None:
    class Down(FakeStore):
        def observe(self) -> TargetState:
            raise StoreError(self.target, "connection refused")

    states, failures = observe_each({"a": FakeStore("a"), "b": Down("b"), "c": FakeStore("c")})
    assert list(states) == ["a", "c"]
    assert {n: str(e) for n, e in failures.items()} == {"b": "target 'b': connection refused"}


def test_a_bug_is_not_a_target_failure() -> None:
    class Broken(FakeStore):
        def observe(self) -> TargetState:
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        observe_each({"a": FakeStore("a"), "b": Broken("b")})


@pytest.mark.parametrize("parallelism", [1, 2])
def test_apply_runs_at_most_parallelism_targets_at_once(parallelism: int) -> None:
    cat = catalog(build("deb/1", 1))
    names = ("a", "b", "c", "d")
    gauge = Gauge(parties=parallelism if parallelism > 1 else None)
    stores = {n: GaugedStore(n, gauge, universe={"r": cat}) for n in names}
    cfg = config(*(entry("r:deb/1", target=n) for n in names), targets=names)
    plan = make_plan(cfg, {"r": cat}, {n: FakeStore.observe(s) for n, s in stores.items()},
                     now=NOW)
    gauge.most = 0
    result = apply_plan(plan, stores=stores, reader=FakeReader({"r": cat}),
                        remotes=cfg.remotes, parallelism=parallelism)
    assert result.ok and len(result.outcomes) == len(names)
    assert gauge.most == parallelism
    assert [o.change.target for o in result.outcomes] == sorted(
        o.change.target for o in result.outcomes)


# -- the commands ---------------------------------------------------------------------------

def test_plan_shows_the_reachable_targets_and_fails_the_unreachable_one(w: World) -> None:
    w.write(FULL)
    _unreachable(w, "prod")
    code, out, err = w.run("plan")
    assert code == 1
    assert out == (
        "Target local (project default):\n"
        f"  {DEB_LINE}  # declared, not in store\n"
        "\n"
        "Target prod:\n"
        "  not planned: it could not be observed (see the error)\n"
        "\n"
        "Plan: 1 to download (1.0 kB to download). 1 target not planned.\n")
    assert err == (
        "incus-images: error: target 'prod': cannot connect to https://10.0.0.9:8443: "
        "connection refused\n"
        "incus-images: error: not planned: 'prod' (1 target failed; the others were planned)\n")


def test_plan_json_names_the_failed_target(w: World) -> None:
    w.write(FULL)
    _unreachable(w, "prod")
    code, out, _ = w.run("plan", "--format", "json")
    doc = json.loads(out)
    assert code == 1
    assert doc["targets"] == {"prod": {"error": "target 'prod': cannot connect to "
                                                "https://10.0.0.9:8443: connection refused"}}
    assert {c["target"] for c in doc["changes"]} == {"local"}


def test_plan_with_every_target_unreachable_prints_no_plan(w: World) -> None:
    w.write(FULL)
    _unreachable(w, "local")
    _unreachable(w, "prod")
    code, out, err = w.run("plan")
    assert (code, out) == (1, "")
    assert err.count("incus-images: error: target ") == 2


def test_apply_applies_the_others_and_the_summary_names_the_failed_target(w: World) -> None:
    w.write(FULL)
    _unreachable(w, "prod")
    code, out, err = w.run("apply", "--yes")
    assert code == 1
    assert w.pulls() == ["pull debian/12"]  # local was applied
    assert out.endswith("Apply failed: 1 done in 0s; could not reach target prod.\n"
                        "  done:    1 image.download (1.0 kB downloaded)\n"
                        "  failed:  prod: not planned, nothing applied\n")
    assert ("incus-images: error: target 'prod': cannot connect to https://10.0.0.9:8443: "
            "connection refused (not planned, nothing applied)\n") in err
    assert w.stores["local"].leases == 1 and w.stores["prod"].leases == 0
    assert w.stores["local"].config.get("user.incus-images.lease", "") == ""  # released


def test_apply_json_result_lists_failed_targets(w: World) -> None:
    w.write(FULL)
    _unreachable(w, "prod")
    code, out, _ = w.run("apply", "--yes", "--format", "json")
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False
    assert list(doc["failed_targets"]) == ["prod"]
    assert [o["status"] for o in doc["outcomes"]] == ["done"]


def test_apply_with_nothing_to_change_elsewhere_still_fails_for_the_unreachable(
        w: World) -> None:
    w.converged()
    _unreachable(w, "prod")
    code, out, err = w.run("apply", "--yes")
    assert code == 1
    assert "No changes on the targets that could be observed; 1 target not planned." in out
    assert "incus-images: error: not planned: 'prod'" in err


@pytest.mark.parametrize("command", ["plan", "apply", "status"])
def test_parallelism_must_be_at_least_one(w: World, command: str) -> None:
    w.write(FULL)
    code, _, err = w.run(command, "--parallelism", "0")
    assert code == 1 and "--parallelism" in err
    assert w.connections.connected == []


def test_parallelism_one_gives_the_same_output(w: World) -> None:
    w.changed()
    assert w.run("plan", "--parallelism", "1") == w.run("plan")


def test_diff_fails_when_a_target_cannot_be_planned(w: World, monkeypatch: pytest.MonkeyPatch
                                                    ) -> None:
    """A pull request's diff is about every target: a partial plan would read as
    "no changes there", so an unreachable target is an error (exit 1)."""
    import git

    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(w.root.parent.parent))
    repo = git.Repo.init(w.root)
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "t")
        cw.set_value("user", "email", "t@example.test")
    w.write(FULL)
    repo.index.add(["images.yaml"])
    repo.index.commit("base")
    _unreachable(w, "prod")
    code, out, err = w.run("diff", "--base", "HEAD")
    assert (code, out) == (1, "")
    assert err == ("incus-images: error: target 'prod': cannot connect to "
                   "https://10.0.0.9:8443: connection refused\n")


class SlowStore(FakeStore):
    """Its observation takes ``seconds`` (a daemon listing thousands of images)."""

    def __init__(self, target: str, seconds: float) -> None:
        super().__init__(target=target)
        self.seconds = seconds

    def observe(self) -> TargetState:
        time.sleep(self.seconds)
        return super().observe()


def test_a_slow_observation_is_told_of_now_and_then(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "SLOW_SECONDS", 0.3)
    monkeypatch.setattr(pipeline, "SLOW_EVERY", 0.6)
    stores = {"quick": SlowStore("quick", 0.0), "slow": SlowStore("slow", 1.2),
              "slower": SlowStore("slower", 1.8)}  # each 0.3 s from a note
    heard: list[tuple[list[str], float]] = []
    states, failures = observe_each(stores, 3, on_slow=lambda t, s: heard.append((list(t), s)))
    assert failures == {} and list(states) == ["quick", "slow", "slower"]
    assert [(t, round(s, 6)) for t, s in heard] == [
        (["slow", "slower"], 0.3), (["slow", "slower"], 0.9), (["slower"], 1.5)]


def test_still_reading_is_one_note_naming_the_targets(capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    from reconciler.commands import _still_reading

    _still_reading(["a", "b"], 40.0)
    assert capsys.readouterr().err == (
        "incus-images: note: still reading targets 'a', 'b' after 40 s (a daemon sends its "
        "image list only once it is whole: thousands of images take a while)\n")
