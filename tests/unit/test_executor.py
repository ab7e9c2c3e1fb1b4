"""apply's executor against in-memory stores: what stops it, what it checks, what it retries.

- a failed change skips the changes after it on its target (the alias moves and
  deletes that depend on a download never run when the download failed);
- an interrupt stops a target before its next change: the change under way
  finishes and is recorded, the rest are skipped;
- a daemon that reports success without doing the work is an error;
- a server setting is written with compare-and-swap: a concurrent change to the
  server config between ``GET /1.0`` and ``PATCH`` is retried, and a config that
  keeps changing makes the change fail after ``MAX_ATTEMPTS`` tries.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from reconciler.apply.executor import INTERRUPTED, _TargetRun, apply_plan
from reconciler.apply.settings import set_server_key
from reconciler.apply.verify import verify
from reconciler.core.inventory import MAX_ATTEMPTS, Edit, compare_and_swap, decode
from reconciler.core.planner import make_plan
from reconciler.errors import ApplyError, OperationFailed, StoreError
from reconciler.model.changes import AliasDelete, typed
from reconciler.model.config import Config, RemoteSpec
from reconciler.model.observed import inventory_key
from reconciler.model.plan import Action, Plan, PullSource
from reconciler.model.remote import RemoteCatalog
from reconciler.model.result import ApplyResult, Outcome, Status
from reconciler.render.progress import SilentReporter
from tests.support.builders import NOW, build, catalog, config, entry
from tests.support.fakes import FakeReader, FakeStore

SETTING = "images.auto_update_interval"
EARLIER_FAILED = "not attempted: an earlier change of this target failed"


def plan_for(cfg: Config, store: FakeStore, cat: RemoteCatalog) -> Plan:
    return make_plan(cfg, {"r": cat}, {store.target: store.observe()}, now=NOW)


def run(cfg: Config, store: FakeStore, cat: RemoteCatalog, plan: Plan) -> ApplyResult:
    return apply_plan(plan, stores={store.target: store}, reader=FakeReader({"r": cat}),
                      remotes=cfg.remotes)


def actions(outcomes: tuple[Outcome, ...] | list[Outcome]) -> list[tuple[str, str]]:
    return [(o.change.action.value, o.status.value) for o in outcomes]


def owned(store: FakeStore, owner: str = "incus-images") -> dict[str, tuple[str, ...]]:
    """The stored inventory of ``owner``: fingerprint -> the aliases its record lists."""
    text = store.config.get(inventory_key(owner, store.project))
    if text is None:
        return {}
    inv = decode(owner, store.project, text)
    return {fp: rec.aliases for fp, rec in inv.images.items()}


def converged_on_first_build() -> tuple[Config, FakeStore, RemoteCatalog]:
    """deb/1 serial 1 with alias 'deb', applied; the remote then publishes serial 2."""
    b1, b2 = build("deb/1", 1), build("deb/1", 2)
    first = catalog(b1)
    store = FakeStore(universe={"r": first})
    cfg = config(entry("r:deb/1", "deb"))
    assert run(cfg, store, first, plan_for(cfg, store, first)).ok
    newer = catalog(b1, b2)
    store.universe = {newer.url: newer}
    return cfg, store, newer


# -- a failure skips what depends on it --------------------------------------------------------

class NoUploads(FakeStore):
    """The daemon cannot reach the remote, and an upload fails too."""

    def upload_image(self, parts: list[tuple[str, Iterator[bytes]]], *, fingerprint: str,
                     type_: str, progress: object) -> str:
        self.calls.append(f"upload {fingerprint}")
        raise OperationFailed(self.target, "the upload was cut short")


def test_a_failed_download_skips_the_alias_move_and_the_delete_that_depend_on_it() -> None:
    cfg, plain, cat = converged_on_first_build()
    store = NoUploads(universe={})  # the daemon cannot reach the remote: the pull fails
    store.images, store.aliases, store.config = plain.images, plain.aliases, plain.config
    old = next(iter(store.images))
    plan = plan_for(cfg, store, cat)
    assert [c.action for c in plan.changes] == [
        Action.IMAGE_DOWNLOAD, Action.ALIAS_MOVE, Action.IMAGE_DELETE]
    store.calls.clear()

    result = run(cfg, store, cat, plan)

    assert actions(result.outcomes) == [
        ("image.download", "failed"), ("alias.move", "skipped"), ("image.delete", "skipped")]
    assert "the upload was cut short" in result.outcomes[0].message
    assert [o.message for o in result.outcomes[1:]] == [EARLIER_FAILED] * 2
    assert not [c for c in store.calls if c.startswith(("alias", "delete"))], store.calls
    assert set(store.images) == {old} and store.aliases == {"deb": (old, "")}
    assert owned(store) == {old: ("deb",)}  # the record still describes what is there


def test_a_failed_change_on_one_target_leaves_the_other_target_alone() -> None:
    b1 = build("deb/1", 1)
    cat = catalog(b1)
    broken, fine = NoUploads("a", universe={}), FakeStore("b", universe={"r": cat})
    cfg = config(entry("r:deb/1", "deb", target="a"), entry("r:deb/1", "deb", target="b"),
                 targets=("a", "b"))
    plan = make_plan(cfg, {"r": cat}, {"a": broken.observe(), "b": fine.observe()}, now=NOW)
    result = apply_plan(plan, stores={"a": broken, "b": fine}, reader=FakeReader({"r": cat}),
                        remotes=cfg.remotes)
    by_target = {t: actions([o for o in result.outcomes if o.change.target == t])
                 for t in ("a", "b")}
    assert by_target == {"a": [("image.download", "failed"), ("alias.create", "skipped")],
                         "b": [("image.download", "done"), ("alias.create", "done")]}
    assert fine.aliases == {"deb": (b1.fingerprint, "")}


# -- interrupts ----------------------------------------------------------------------------------

class Recording(SilentReporter):
    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []

    def done(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)


def test_an_interrupt_during_a_change_stops_before_the_next_and_records_the_one_made() -> None:
    """The stop comes while the first download is under way: it finishes, lands in the
    ownership record, and nothing else is attempted (no alias, no closing check)."""
    builds = [build(f"os/{n}", 1) for n in (1, 2)]
    cat = catalog(*builds)
    store = FakeStore(universe={"r": cat})
    cfg = config(*(entry(f"r:os/{n}", f"os{n}") for n in (1, 2)))
    plan = plan_for(cfg, store, cat)
    assert [c.action for c in plan.changes] == [
        Action.IMAGE_DOWNLOAD, Action.IMAGE_DOWNLOAD, Action.ALIAS_CREATE, Action.ALIAS_CREATE]
    stop = threading.Event()
    real_pull = store.pull_image

    def pull_then_stop(pull: PullSource, **kw: object) -> str:
        stop.set()  # as apply_plan does when the main thread gets SIGINT/SIGTERM
        return real_pull(pull, **kw)  # type: ignore[arg-type]

    store.pull_image = pull_then_stop  # type: ignore[method-assign]
    reporter = Recording()
    target = _TargetRun(plan, "local", store, FakeReader({"r": cat}), cfg.remotes, reporter,
                        stop)
    store.calls.clear()

    outcomes = target.run()

    assert actions(outcomes) == [("image.download", "done")] + [
        (c.action.value, "skipped") for c in plan.changes[1:]]
    assert {o.message for o in outcomes[1:]} == {INTERRUPTED}
    assert reporter.outcomes == outcomes[:1]  # the skipped ones are said in one line instead
    assert set(store.images) == {builds[0].fingerprint} and store.aliases == {}
    assert owned(store) == {builds[0].fingerprint: ()}  # made, recorded; no alias made yet
    assert store.calls.count("observe") == 1  # the one look apply takes at a target


def test_a_stop_before_the_first_change_attempts_none() -> None:
    cat = catalog(build("deb/1", 1))
    store = FakeStore(universe={"r": cat})
    cfg = config(entry("r:deb/1", "deb"))
    plan = plan_for(cfg, store, cat)
    stop = threading.Event()
    stop.set()
    outcomes = _TargetRun(plan, "local", store, FakeReader({"r": cat}), cfg.remotes,
                          SilentReporter(), stop).run()
    assert {o.status for o in outcomes} == {Status.SKIPPED}
    assert store.images == {} and store.config == {}


# -- verification --------------------------------------------------------------------------------

class Liar(FakeStore):
    """A daemon that answers success to alias creation and image deletion, doing neither."""

    def create_alias(self, name: str, target: str, description: str) -> None:
        self.calls.append(f"alias create {name}")

    def delete_image(self, fingerprint: str) -> None:
        self.calls.append(f"delete {fingerprint}")


def test_an_alias_the_daemon_said_it_made_but_did_not_is_an_error() -> None:
    b1 = build("deb/1", 1)
    cat = catalog(b1)
    store = Liar(universe={"r": cat})
    cfg = config(entry("r:deb/1", "deb"))
    result = run(cfg, store, cat, plan_for(cfg, store, cat))
    assert actions(result.outcomes) == [("image.download", "done"), ("alias.create", "failed")]
    assert result.outcomes[-1].message == (
        f"target 'local': the daemon reported success but alias 'deb' does not point to "
        f"{b1.fingerprint}")
    assert owned(store) == {b1.fingerprint: ()}  # an alias that is not there is not recorded


def test_an_image_the_daemon_said_it_deleted_but_did_not_is_an_error() -> None:
    cfg, plain, cat = converged_on_first_build()
    store = Liar(universe=dict(plain.universe))
    store.images, store.aliases, store.config = plain.images, plain.aliases, plain.config
    old = next(iter(store.images))
    result = run(cfg, store, cat, plan_for(cfg, store, cat))
    assert actions(result.outcomes) == [
        ("image.download", "done"), ("alias.move", "done"), ("image.delete", "failed")]
    assert result.outcomes[-1].message == (
        f"target 'local': the daemon reported success but image {old} is still in the store")


def test_verify_names_every_change_that_did_not_land() -> None:
    cfg, store, cat = converged_on_first_build()
    old = next(iter(store.images))
    plan = plan_for(cfg, store, cat)
    new = plan.changes[0].fingerprint
    gone = AliasDelete(target="local", project="default", reason="r", alias="deb", from_=old)
    with pytest.raises(ApplyError) as caught:  # nothing of the plan was done
        verify("local", (*map(typed, plan.changes), gone), store.observe())
    assert str(caught.value) == (
        "target 'local': the daemon reported success but "
        f"image {new} is not in the store; alias 'deb' does not point to {new}; "
        f"image {old} is still in the store; alias 'deb' still exists")
    assert run(cfg, store, cat, plan).ok
    verify("local", list(map(typed, plan.changes)), store.observe())  # all landed: no error


# -- server settings: compare-and-swap ------------------------------------------------------------

def racing(store: FakeStore, times: int) -> list[str]:
    """Make another writer change the server config right after each of the next
    ``times`` reads of it; return the log of the tool's PATCHes of SETTING."""
    real_get, real_patch = store.get_server_config, store.patch_server_config
    left = [times]
    patches: list[str] = []

    def get() -> tuple[dict[str, str], str]:
        got = real_get()
        if left[0] > 0:
            left[0] -= 1
            real_patch({"user.other": str(store.etag)}, str(store.etag))  # someone else
        return got

    def patch(changes: dict[str, str], etag: str) -> None:
        if SETTING in changes:
            patches.append(changes[SETTING])
        real_patch(changes, etag)

    store.get_server_config = get  # type: ignore[method-assign]
    store.patch_server_config = patch  # type: ignore[method-assign]
    return patches


def test_a_setting_written_while_another_writer_changes_the_config_is_retried() -> None:
    cat = catalog(build("deb/1", 1))
    store = FakeStore(universe={"r": cat})
    cfg = config(server={SETTING: "12"})
    plan = plan_for(cfg, store, cat)
    assert [c.action for c in plan.changes] == [Action.SERVER_UPDATE]
    patches = racing(store, 2)
    assert run(cfg, store, cat, plan).ok
    assert patches == ["12", "12", "12"]  # two lost races, then the write
    assert store.config[SETTING] == "12"
    assert store.config["user.other"]  # the other writer's change is kept


def test_a_setting_gives_up_when_the_config_keeps_changing() -> None:
    cat = catalog(build("deb/1", 1))
    store = FakeStore(universe={"r": cat})
    cfg = config(entry("r:deb/1", "deb"), server={SETTING: "12"})
    plan = plan_for(cfg, store, cat)
    assert plan.changes[0].action is Action.SERVER_UPDATE
    patches = racing(store, 1000)
    result = run(cfg, store, cat, plan)
    assert result.outcomes[0].status is Status.FAILED
    assert result.outcomes[0].message == (
        f"target 'local': could not set {SETTING}: the server config kept changing "
        f"({MAX_ATTEMPTS} attempts)")
    assert len(patches) == MAX_ATTEMPTS
    assert {o.status for o in result.outcomes[1:]} == {Status.SKIPPED}
    assert SETTING not in store.config and store.images == {}


def test_a_setting_already_in_place_is_not_written() -> None:
    store = FakeStore()
    store.config[SETTING] = "12"
    patches = racing(store, 0)
    set_server_key("local", store, SETTING, "12")
    assert patches == [] and store.etag == 0


def test_compare_and_swap_decides_afresh_after_a_lost_race() -> None:
    """The edit sees the config the other writer left, not the one read before."""
    store = FakeStore()
    racing(store, 1)
    seen: list[str | None] = []

    def edit(config: dict[str, str]) -> Edit[int]:
        seen.append(config.get("user.other"))
        return Edit({"user.mine": "1"}, len(seen))

    assert compare_and_swap(store, edit, gave_up=lambda: -1) == 2
    assert seen == [None, "0"] and store.config["user.mine"] == "1"

    def fail() -> int:
        raise StoreError("local", "gave up")

    racing(store, 1000)
    with pytest.raises(StoreError, match="gave up"):
        compare_and_swap(store, edit, gave_up=fail, attempts=3)


# -- credentials never reach the daemon ----------------------------------------------------------

def test_a_remote_with_credentials_is_uploaded_without_asking_the_daemon() -> None:
    b1 = build("deb/1", 1)
    cat = catalog(b1, url="https://user:secret@images.test")
    store = FakeStore(universe={"r": cat})
    cfg = config(entry("r:deb/1", "deb"))
    cfg = cfg.model_copy(update={"remotes": {"r": RemoteSpec(
        name="r", url="https://user:secret@images.test", protocol="simplestreams")}})
    assert not cfg.remotes["r"].daemon_can_pull
    plan = plan_for(cfg, store, cat)
    store.calls.clear()
    result = run(cfg, store, cat, plan)
    assert result.ok, [o.message for o in result.failed]
    assert result.outcomes[0].via == "upload"
    assert not [c for c in store.calls if c.startswith("pull")]
    assert f"upload {b1.fingerprint}" in store.calls
