"""What apply asks of a store, from ``FakeStore``'s call log, and the pure parts of that.

- each target is observed once; no download looks at the whole store again;
- the ownership records are written a few times per target, each write starting
  from the config the previous one wrote (no ``GET /1.0`` before it), and an image
  that already has its declared fields is not updated;
- downloads run a few at once, are reported in plan order, and a failure among
  them leaves records that describe exactly what landed;
- ``fold`` keeps an observation current; ``holds`` compares writable fields;
  ``config_etag`` is the daemon's ETag of a server config.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from reconciler.adapters.incus_decode import config_etag
from reconciler.apply.executor import apply_plan
from reconciler.core.applied import fold, holds, with_aliases
from reconciler.core.inventory import KnownConfig, decode, update_inventory
from reconciler.core.planner import make_plan
from reconciler.errors import OperationFailed
from reconciler.model.changes import (
    AliasCreate,
    AliasDelete,
    AliasMove,
    ImageDelete,
    ServerUpdate,
)
from reconciler.model.config import Config
from reconciler.model.observed import (
    Inventory,
    ObservedAlias,
    ObservedImage,
    RecordedImage,
    TargetState,
    inventory_key,
)
from reconciler.model.plan import FieldChange, Plan, PullSource, Writable
from reconciler.model.remote import RemoteCatalog
from reconciler.model.result import ApplyResult, Status
from reconciler.render.progress import SilentReporter
from tests.support.builders import NOW, build, catalog, config, entry
from tests.support.fakes import FakeReader, FakeStore


def plan_for(cfg: Config, store: FakeStore, cat: RemoteCatalog) -> Plan:
    return make_plan(cfg, {"r": cat}, {store.target: store.observe()}, now=NOW)


def run(cfg: Config, store: FakeStore, cat: RemoteCatalog, plan: Plan, *,
        pulls: int = 3, reporter: SilentReporter | None = None) -> ApplyResult:
    return apply_plan(plan, stores={store.target: store}, reader=FakeReader({"r": cat}),
                      remotes=cfg.remotes, pulls=pulls, reporter=reporter)


def many(n: int) -> tuple[Config, RemoteCatalog, FakeStore]:
    builds = [build(f"os/{i}", 1) for i in range(n)]
    cat = catalog(*builds)
    cfg = config(*(entry(f"r:os/{i}", f"os{i}") for i in range(n)))
    return cfg, cat, FakeStore(universe={"r": cat})


def recorded(store: FakeStore) -> Inventory:
    return decode("incus-images", store.project,
                  store.config[inventory_key("incus-images", store.project)])


# -- what apply asks -------------------------------------------------------------------------

@pytest.mark.parametrize("unmanaged", [0, 40])
def test_apply_observes_once_and_reads_no_config_before_writing(unmanaged: int) -> None:
    cfg, cat, store = many(9)
    for i in range(unmanaged):
        store.put(ObservedImage(fingerprint=f"{i:064x}"))
    plan = plan_for(cfg, store, cat)
    store.calls.clear()
    assert run(cfg, store, cat, plan).ok
    calls = store.calls
    assert calls.count("observe") == 1
    assert calls.count("config") == 0  # every write starts from the one the last wrote
    assert not [c for c in calls if c.startswith("update")]  # the pulls set the fields
    # One write marks the consecutive pulls in flight (up to WINDOW of them, run 3 at a
    # time); one records the aliases made together, with the images that ride along;
    # the closing write finds nothing left to write.
    assert calls.count("patch config") == 1 + 1, calls
    assert calls.count("aliases") == 1  # the check at the end: the alias table, once
    assert len([c for c in calls if c.startswith("get ")]) == 9  # each landed image, once


def test_the_number_of_calls_does_not_depend_on_the_store_s_size() -> None:
    logs = []
    for unmanaged in (5, 50):
        cfg, cat, store = many(2)
        for i in range(unmanaged):
            store.put(ObservedImage(fingerprint=f"{i:064x}"))
        plan = plan_for(cfg, store, cat)
        store.calls.clear()
        assert run(cfg, store, cat, plan).ok
        logs.append([c.split(" ")[0] for c in store.calls])
    assert logs[0] == logs[1]


def test_an_image_without_its_declared_fields_is_updated() -> None:
    cfg, cat, store = many(1)
    plan = plan_for(cfg, store, cat)
    real_pull = store.pull_image

    def pull_forgetting_public(pull: PullSource, **kw: object) -> str:
        fp = real_pull(pull, **kw)  # type: ignore[arg-type]
        store.images[fp] = store.images[fp].model_copy(update={"profiles": ()})
        return fp

    store.pull_image = pull_forgetting_public  # type: ignore[method-assign]
    assert run(cfg, store, cat, plan).ok
    (fp,) = store.images
    assert f"update {fp}" in store.calls
    assert store.images[fp].profiles == ("default",)


def test_a_stale_known_config_costs_one_refused_write_and_a_read() -> None:
    store = FakeStore()
    known = KnownConfig({}, "0")
    store.config["user.someone"] = "x"  # another writer, after the config was known
    store.etag += 1
    update_inventory(store, "o", "default", lambda inv: inv.model_copy(update={
        "images": {"f" * 64: RecordedImage(source="r:os")}}), known=known)
    assert store.calls == ["patch config", "config", "patch config"]
    assert store.config["user.someone"] == "x"
    assert known.value == (store.config, str(store.etag))


def test_an_unknown_etag_is_never_used_for_a_write() -> None:
    assert KnownConfig({"a": "b"}, "").value is None


# -- downloads at once ------------------------------------------------------------------------

class Overlapping(FakeStore):
    """Pulls that tell apply the daemon took them on, then wait until ``width`` pulls
    are under way together (or a second passes); counts the most at once.  The pull
    by alias ``fail`` fails, and so does every upload."""

    def __init__(self, *, width: int, fail: str = "", **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.width = width
        self.fail = fail
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()
        self.all_in = threading.Event()

    def upload_image(self, parts: object, **kw: object) -> str:
        raise OperationFailed(self.target, "the upload fails too")

    def pull_image(self, pull: PullSource, **kw: object) -> str:
        accepted = kw.get("accepted")
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            if self.running >= self.width:
                self.all_in.set()
        if callable(accepted):
            accepted()
        self.all_in.wait(timeout=1)
        try:
            if pull.alias == self.fail:
                raise OperationFailed(self.target, f"alias {pull.alias} not found")
            with self.lock:
                return super().pull_image(pull, **kw)  # type: ignore[arg-type]
        finally:
            with self.lock:
                self.running -= 1


class Lines(SilentReporter):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def done(self, outcome: object) -> None:
        self.lines.append(f"done {outcome.change.alias or outcome.change.source}")  # type: ignore[attr-defined]

    def note(self, target: str, text: str) -> None:
        self.lines.append(f"note {text.split(': ')[0]}")


@pytest.mark.parametrize("pulls", [2, 3])
def test_downloads_run_a_few_at_once_and_are_reported_in_plan_order(pulls: int) -> None:
    builds = [build(f"os/{i}", 1) for i in range(6)]
    cat = catalog(*builds)
    cfg = config(*(entry(f"r:os/{i}", f"os{i}") for i in range(6)))
    store = Overlapping(width=pulls, universe={"r": cat})
    plan = plan_for(cfg, store, cat)
    reporter = Lines()
    result = run(cfg, store, cat, plan, pulls=pulls, reporter=reporter)
    assert result.ok
    assert store.most == pulls
    assert reporter.lines == [f"done {c.alias or c.source}" for c in plan.changes]
    assert set(recorded(store).images) == {b.fingerprint for b in builds}
    assert not recorded(store).pending


def test_a_failed_download_among_several_leaves_records_of_what_landed() -> None:
    builds = [build(f"os/{i}", 1) for i in range(3)]
    cat = catalog(*builds)
    cfg = config(*(entry(f"r:os/{i}", f"os{i}") for i in range(3)))
    store = Overlapping(width=3, universe={"r": cat})
    plan = plan_for(cfg, store, cat)
    first, *others = [c for c in plan.changes if c.pull is not None]
    assert first.pull is not None
    store.fail = first.pull.alias or ""
    reporter = Lines()
    result = run(cfg, store, cat, plan, reporter=reporter)
    statuses = [(o.change.action.value, o.status) for o in result.outcomes]
    assert statuses == [("image.download", Status.FAILED), ("image.download", Status.DONE),
                        ("image.download", Status.DONE)] + [
        ("alias.create", Status.SKIPPED)] * 3
    # The two that landed are recorded; no marker is left standing; no alias was made.
    assert set(recorded(store).images) == {c.fingerprint for c in others}
    assert set(store.images) == {c.fingerprint for c in others}
    assert not recorded(store).pending
    assert store.aliases == {}
    # Notes and outcomes come out in plan order, each change's note before its line.
    assert reporter.lines[:2] == [f"note {first.source}", f"done {first.source}"]


class OverlappingAliases(FakeStore):
    """Alias creations that wait until ``width`` are under way together (or a second
    passes); counts the most at once.  Creating alias ``fail`` fails, and the others
    under way with it finish after it did (and apply had a moment to see it)."""

    def __init__(self, *, width: int, fail: str = "", **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.width, self.fail = width, fail
        self.running = self.most = 0
        self.lock = threading.Lock()
        self.all_in = threading.Event()
        self.raised = threading.Event()

    def create_alias(self, name: str, target: str, description: str) -> None:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            if self.running >= self.width:
                self.all_in.set()
        self.all_in.wait(timeout=1)
        try:
            if name == self.fail:
                self.raised.set()
                raise OperationFailed(self.target, f"alias {name} refused")
            if self.fail and self.raised.wait(timeout=1):
                time.sleep(0.05)
            with self.lock:
                super().create_alias(name, target, description)
        finally:
            with self.lock:
                self.running -= 1


def test_alias_creations_run_a_few_at_once_and_are_reported_in_plan_order() -> None:
    cfg, cat, _ = many(6)
    store = OverlappingAliases(width=3, universe={"r": cat})
    plan = plan_for(cfg, store, cat)
    reporter = Lines()
    result = run(cfg, store, cat, plan, reporter=reporter)
    assert result.ok
    assert store.most == 3
    assert reporter.lines == [f"done {c.alias or c.source}" for c in plan.changes]
    assert set(store.aliases) == {f"os{i}" for i in range(6)}
    assert {a for rec in recorded(store).images.values() for a in rec.aliases} == \
        set(store.aliases)


def test_after_a_failed_alias_creation_none_starts() -> None:
    """The ones under way with it finish; the rest, and what follows, are skipped."""
    cfg, cat, _ = many(6)
    store = OverlappingAliases(width=2, fail="os0", universe={"r": cat})
    plan = plan_for(cfg, store, cat)
    result = run(cfg, store, cat, plan, pulls=2)
    creates = [o for o in result.outcomes if o.change.action.value == "alias.create"]
    assert [o.status for o in creates[:2]] == [Status.FAILED, Status.DONE]
    assert [o.status for o in creates[2:]] == [Status.SKIPPED] * 4
    assert all(o.message == "not attempted: an earlier change of this target failed"
               for o in creates[2:])
    assert set(store.aliases) == {"os1"}
    assert {a for rec in recorded(store).images.values() for a in rec.aliases} == {"os1"}


class RefusingWrites(FakeStore):
    """Refuses every records write once ``armed`` (the daemon gave up on the PATCH)."""

    armed = False

    def create_alias(self, name: str, target: str, description: str) -> None:
        super().create_alias(name, target, description)
        self.armed = True

    def patch_server_config(self, changes: dict[str, str], etag: str) -> str:
        if self.armed:
            self.calls.append("patch config")
            raise OperationFailed(self.target, "records write refused")
        return super().patch_server_config(changes, etag)


def test_the_aliases_made_ride_along_with_the_closing_write() -> None:
    cfg, cat, store = many(5)
    plan = plan_for(cfg, store, cat)
    assert run(cfg, store, cat, plan).ok
    writes = [i for i, c in enumerate(store.calls) if c == "patch config"]
    creates = [i for i, c in enumerate(store.calls) if c.startswith("alias create")]
    assert len(creates) == 5
    assert [w for w in writes if w > creates[0]] == [writes[-1]]  # one, after them all
    assert writes[-1] > creates[-1]
    assert {a for rec in recorded(store).images.values() for a in rec.aliases} == \
        {f"os{i}" for i in range(5)}


def test_aliases_made_but_not_yet_recorded_are_recorded_by_the_next_apply() -> None:
    """The closing write is refused (as if apply were killed before it): the last change
    fails; the aliases stand where they are declared, the next plan makes nothing again,
    and its apply records them."""
    cfg, cat, _ = many(4)
    store = RefusingWrites(universe={"r": cat})
    plan = plan_for(cfg, store, cat)
    result = run(cfg, store, cat, plan)
    assert not result.ok
    assert result.outcomes[-1].status is Status.FAILED
    assert result.outcomes[-1].message.endswith("records write refused")
    assert set(store.aliases) == {f"os{i}" for i in range(4)}
    store.armed = False
    again = plan_for(cfg, store, cat)
    # nothing made again (an image its marker still claims is adopted: no request)
    assert {c.action.value for c in again.changes} <= {"image.adopt"}
    assert run(cfg, store, cat, again).ok
    assert {a for rec in recorded(store).images.values() for a in rec.aliases} == \
        {f"os{i}" for i in range(4)}


# -- the pure parts ---------------------------------------------------------------------------

FP1, FP2 = "1" * 64, "2" * 64


def state(*images: ObservedImage) -> TargetState:
    return TargetState(target="t", project="default", effective_project="default",
                       host_architecture="x86_64", images=images)


def alias(name: str, fp: str, description: str = "") -> ObservedAlias:
    return ObservedAlias(name=name, description=description, target=fp)


def common(c: type) -> dict[str, str]:
    return {"target": "t", "project": "default", "reason": "r"}


def test_fold_moves_creates_and_deletes_aliases_and_images() -> None:
    s = state(ObservedImage(fingerprint=FP1, aliases=(alias("a", FP1, "kept"),)),
              ObservedImage(fingerprint=FP2))
    moved = fold(s, AliasMove(**common(AliasMove), alias="a", from_=FP1, to=FP2,
                              description="new"))
    assert moved.alias_targets() == {"a": alias("a", FP2, "kept")}  # a move keeps it
    made = fold(moved, AliasCreate(**common(AliasCreate), alias="b", to=FP1, description="d"))
    assert made.alias_targets()["b"] == alias("b", FP1, "d")
    gone = fold(made, AliasDelete(**common(AliasDelete), alias="b", from_=FP1))
    assert "b" not in gone.alias_targets()
    deleted = fold(gone, ImageDelete(**common(ImageDelete), fingerprint=FP2))
    assert [i.fingerprint for i in deleted.images] == [FP1]
    assert deleted.alias_targets() == {}  # the image took its alias with it


def test_fold_of_a_download_adds_the_image_as_read() -> None:
    from reconciler.model.changes import ImageDownload

    landed = ObservedImage(fingerprint=FP2, public=True, aliases=(alias("x", FP2),))
    s = state(ObservedImage(fingerprint=FP1, aliases=(alias("x", FP1),)))
    c = ImageDownload(**common(ImageDownload), fingerprint=FP2, source="r:os", size=1,
                      pull=PullSource(remote="r", server="https://s", protocol="simplestreams",
                                      alias="os"),
                      writable=Writable(auto_update=False, public=True, profiles=("default",)),
                      record=RecordedImage(source="r:os"))
    after = fold(s, c, landed)
    assert after.image(FP2) == landed
    assert after.alias_targets() == {"x": alias("x", FP2)}  # an alias lives on one image


def test_fold_of_server_settings() -> None:
    s = state().model_copy(update={"server_config": {"images.a": "1", "images.b": "2"}})
    c = ServerUpdate(**common(ServerUpdate), fields={
        "images.a": FieldChange(from_="1", to=None), "images.b": FieldChange(from_="2", to=3)})
    assert fold(s, c).server_config == {"images.b": "3"}


def test_with_aliases_takes_the_daemon_s_alias_table() -> None:
    s = state(ObservedImage(fingerprint=FP1, aliases=(alias("a", FP1),)),
              ObservedImage(fingerprint=FP2))
    after = with_aliases(s, [alias("a", FP2), alias("z", "9" * 64)])
    assert after.alias_targets() == {"a": alias("a", FP2)}


def test_holds_compares_each_writable_field() -> None:
    when = datetime(2030, 1, 1, tzinfo=UTC)
    img = ObservedImage(fingerprint=FP1, public=True, profiles=("default", "x"),
                        properties={"k": "v", "gone": "1"}, expires_at=when)
    w = Writable(auto_update=False, public=True, profiles=("default", "x"),
                 properties={"k": "v", "absent": None}, expires_at=when)
    assert holds(img, w)
    assert not holds(img, w.model_copy(update={"public": False}))
    assert not holds(img, w.model_copy(update={"profiles": ("x", "default")}))
    assert not holds(img, w.model_copy(update={"properties": {"gone": None}}))
    assert not holds(img, w.model_copy(update={"properties": {"k": "w"}}))
    assert not holds(img, w.model_copy(update={"expires_at": None}))


def test_config_etag_is_the_daemon_s() -> None:
    """Values read from incusd 6.0.4 (``GET /1.0``'s ETag for those configs)."""
    assert config_etag({"images.auto_update_interval": "0"}) == (
        '"7235faef0173c158b40f6f7f5e21ac1b36df3311682bb1d56d8f009ab95c7db3"')
    assert config_etag({"images.auto_update_interval": "0", "user.x": "a<b>&\u00e9"}) == (
        '"360628f2587b43fad6f3b5a4eae2e69963d15704c712c19b4b09910920190026"')


class _OneSlowPull(FakeStore):
    """Pulls that the daemon accepts at once; the pull of ``slow`` runs until released."""

    def __init__(self, slow: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.slow = slow
        self.release = threading.Event()
        self.started: list[str] = []
        self.all_started = threading.Event()
        self.expected = 0

    def pull_image(self, pull: PullSource, *, certificate: str | None, writable: Writable,
                   progress: object, present: object = None, accepted: object = None) -> str:
        self.started.append(pull.alias or "")
        if len(self.started) == self.expected:
            self.all_started.set()
        if callable(accepted):
            accepted()
        if pull.alias == self.slow:
            self.release.wait(30)  # a safety net: the test releases it
        return super().pull_image(pull, certificate=certificate, writable=writable,
                                  progress=progress)


def test_the_next_pull_starts_as_soon_as_one_ends_not_when_its_group_does() -> None:
    builds = [build(f"os/{i}", 1) for i in range(5)]
    cat = catalog(*builds)
    cfg = config(*(entry(f"r:os/{i}", f"os{i}") for i in range(5)))
    probe = FakeStore(universe={"r": cat})
    order = [c.source for c in plan_for(cfg, probe, cat).changes
             if c.action.value == "image.download"]
    slow = (order[0] or "").split(":", 1)[1]
    store = _OneSlowPull(slow, universe={"r": cat})
    store.expected = 5
    plan = plan_for(cfg, store, cat)
    result: list[ApplyResult] = []
    worker = threading.Thread(target=lambda: result.append(run(cfg, store, cat, plan)))
    worker.start()
    try:
        # 3 at a time: while the first pull still runs, the other four get their turn.
        assert store.all_started.wait(30), store.started
        assert not result  # the slow one still holds apply
    finally:
        store.release.set()
        worker.join(30)
    assert result and result[0].ok
    assert sorted(store.images) == sorted(b.fingerprint for b in builds)


def test_a_target_halted_starts_no_more_changes_and_says_why() -> None:
    """``halted`` (the lease was taken over) is asked before each change: the changes
    after it said so are skipped with its reason."""
    cfg, cat, store = many(3)
    plan = plan_for(cfg, store, cat)
    why = "not attempted: the lease on this target was taken over by them"
    pulled: list[str] = []
    original = store.pull_image

    def pull_image(pull: PullSource, **kw: object) -> str:
        pulled.append(pull.alias or "")
        return original(pull, **kw)  # type: ignore[arg-type]

    store.pull_image = pull_image  # type: ignore[method-assign]
    result = apply_plan(plan, stores={store.target: store}, reader=FakeReader({"r": cat}),
                        remotes=cfg.remotes, pulls=1,
                        halted=lambda target: why if pulled else None)
    assert [o.status for o in result.outcomes] == [Status.DONE] + [Status.SKIPPED] * 5
    assert all(o.message == why for o in result.outcomes[1:])
    assert len(pulled) == 1 and store.aliases == {}
