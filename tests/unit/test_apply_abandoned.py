"""apply when the store gives up on a pull (``OperationAbandoned``): never an upload,
and the in-flight marker stays unless the daemon confirmed the cancel."""

from __future__ import annotations

from reconciler.apply.executor import apply_plan
from reconciler.core.inventory import decode
from reconciler.core.planner import make_plan
from reconciler.errors import OperationAbandoned
from reconciler.model.config import Config
from reconciler.model.observed import PendingPull, UpdateSource, inventory_key
from reconciler.model.plan import Plan, PullSource, Writable
from reconciler.model.remote import RemoteCatalog
from reconciler.model.result import ApplyResult, Status
from tests.support.builders import NOW, build, catalog, config, entry
from tests.support.fakes import FakeReader, FakeStore

KEY = inventory_key("incus-images", "default")


class GivingUpStore(FakeStore):
    """A store whose next pull is given up on; ``lands`` says whether the daemon's
    operation, which the tool could not cancel, lands the build later anyway."""

    def __init__(self, cat: RemoteCatalog, *, cancelled: bool) -> None:
        super().__init__(universe={"r": cat})
        self.cancelled = cancelled
        self.give_up = True
        self.orphan: tuple[PullSource, Writable] | None = None

    def pull_image(self, pull: PullSource, *, certificate: str | None, writable: Writable,
                   progress: object, present: object = None, accepted: object = None) -> str:
        if not self.give_up:
            return super().pull_image(pull, certificate=certificate, writable=writable,
                                      progress=progress)
        self.calls.append(f"pull {pull.alias or pull.fingerprint}")
        self.give_up = False
        if not self.cancelled:
            self.orphan = (pull, writable)
        raise OperationAbandoned(self.target, "pull: gave up after 3s (--operation-timeout)",
                                 cancelled=self.cancelled)

    def land_orphan(self) -> None:
        """The abandoned operation finishes on the daemon, after the apply ended."""
        assert self.orphan is not None
        pull, writable = self.orphan
        super().pull_image(pull, certificate=None, writable=writable, progress=None)


def pending(store: FakeStore) -> tuple[PendingPull, ...]:
    """The owner's in-flight markers (none when it has no inventory at all)."""
    text = store.config.get(KEY)
    return decode("incus-images", "default", text).pending if text else ()


def plan_for(cfg: Config, store: FakeStore, cat: RemoteCatalog) -> Plan:
    return make_plan(cfg, {"r": cat}, {store.target: store.observe()}, now=NOW)


def run(cfg: Config, store: FakeStore, cat: RemoteCatalog, plan: Plan) -> ApplyResult:
    return apply_plan(plan, stores={store.target: store}, reader=FakeReader({"r": cat}),
                      remotes=cfg.remotes)


def test_a_pull_given_up_on_is_never_uploaded_and_its_marker_stays() -> None:
    b1 = build("deb/1", 1)
    cat = catalog(b1)
    store = GivingUpStore(cat, cancelled=False)
    cfg = config(entry("r:deb/1", "deb", auto_update=True))
    result = run(cfg, store, cat, plan_for(cfg, store, cat))

    assert [o.status for o in result.outcomes] == [Status.FAILED, Status.SKIPPED]
    assert "gave up after 3s" in result.outcomes[0].message
    assert not any(c.startswith("upload") for c in store.calls)
    assert [(p.alias, p.record.source) for p in pending(store)] == [("deb/1", "r:deb/1")]


def test_what_an_abandoned_pull_lands_later_is_adopted_by_the_next_run() -> None:
    b1 = build("deb/1", 1)
    cat = catalog(b1)
    store = GivingUpStore(cat, cancelled=False)
    cfg = config(entry("r:deb/1", "deb", auto_update=True))
    run(cfg, store, cat, plan_for(cfg, store, cat))
    store.land_orphan()
    landed = store.images[b1.fingerprint]
    assert landed.update_source == UpdateSource(server=cat.url, protocol="simplestreams",
                                                alias="deb/1")

    plan = plan_for(cfg, store, cat)
    adopt = [c for c in plan.changes if c.action.value == "image.adopt"]
    assert [c.fingerprint for c in adopt] == [b1.fingerprint]
    assert "interrupted apply" in adopt[0].reason
    assert run(cfg, store, cat, plan).ok
    assert pending(store) == ()
    assert plan_for(cfg, store, cat).changes == ()


def test_what_an_abandoned_pull_lands_after_the_entry_went_is_deleted() -> None:
    b1, other = build("deb/1", 1), build("alp/3", 1)
    cat = catalog(b1, other)
    store = GivingUpStore(cat, cancelled=False)
    cfg = config(entry("r:deb/1", "deb"))
    run(cfg, store, cat, plan_for(cfg, store, cat))
    store.land_orphan()
    # The file no longer declares deb/1: what the abandoned pull landed is still ours.
    smaller = config(entry("r:alp/3", "alp"))
    plan = plan_for(smaller, store, cat)
    assert ("image.delete", b1.fingerprint) in [(c.action.value, c.fingerprint)
                                                for c in plan.changes]
    assert run(smaller, store, cat, plan).ok
    assert b1.fingerprint not in store.images
    assert pending(store) == ()


def test_a_confirmed_cancel_clears_the_marker_and_the_next_run_pulls_again() -> None:
    b1 = build("deb/1", 1)
    cat = catalog(b1)
    store = GivingUpStore(cat, cancelled=True)
    cfg = config(entry("r:deb/1", "deb", auto_update=True))
    result = run(cfg, store, cat, plan_for(cfg, store, cat))
    assert result.outcomes[0].status is Status.FAILED
    assert not any(c.startswith("upload") for c in store.calls)
    assert pending(store) == ()
    again = run(cfg, store, cat, plan_for(cfg, store, cat))
    assert again.ok and again.outcomes[0].via == "pull"
