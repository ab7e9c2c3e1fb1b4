"""One connection per target per command: ``pipeline.opened_stores`` and the stages on it.

A fake ``connect`` (``tests/support/services.Connections``) counts connects and
closes; the stages run for real on in-memory stores.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import pytest

from reconciler import pipeline
from reconciler.apply.lease import LEASE_KEY
from reconciler.errors import StoreError
from reconciler.model.config import TargetSpec
from reconciler.ports import ImageStore
from reconciler.render.progress import SilentReporter
from tests.support.builders import NOW, build, catalog, config, entry
from tests.support.fakes import FakeReader, FakeStore
from tests.support.services import Connections, Readers, services

DEB = build("deb/1", 1)
CAT = catalog(DEB)


def world(*targets: str) -> tuple[Connections, FakeReader]:
    return Connections(fakes(*targets)), FakeReader({"r": CAT})


def fakes(*targets: str) -> dict[str, FakeStore]:
    return {t: FakeStore(t, universe={"r": CAT}) for t in targets}


def test_a_store_is_connected_on_first_use_once_and_closed_at_the_end() -> None:
    conns, reader = world("local", "prod")
    cfg = config(entry(), targets=("local", "prod"))
    with pipeline.opened_stores(cfg, services(conns, Readers(reader))) as stores:
        assert conns.connected == []
        assert stores["prod"] is stores["prod"] is conns.stores["prod"]
        assert stores.connect(cfg.targets["prod"]) is conns.stores["prod"]
        assert sorted(stores) == ["local", "prod"] and len(stores) == 2
        assert conns.connected == ["prod"] and conns.closed == []
    assert conns.closed == ["prod"]


def test_the_stores_are_closed_when_the_block_fails() -> None:
    conns, reader = world("local", "prod")
    cfg = config(entry(), targets=("local", "prod"))
    with pytest.raises(RuntimeError), \
            pipeline.opened_stores(cfg, services(conns, Readers(reader))) as stores:
        stores["local"], stores["prod"]
        raise RuntimeError("the command failed")
    assert sorted(conns.closed) == ["local", "prod"]


def test_a_failed_connect_closes_the_stores_already_open() -> None:
    conns, reader = world("local")
    cfg = config(entry(), targets=("local", "prod"))

    class Refusing(Connections):
        def __call__(self, target: TargetSpec, *, operation_timeout: float | None = None
                     ) -> AbstractContextManager[ImageStore]:
            if target.name == "prod":
                raise StoreError("prod", "cannot use unix:///nowhere")
            return super().__call__(target, operation_timeout=operation_timeout)

    refusing = Refusing(conns.stores)
    with pytest.raises(StoreError), \
            pipeline.opened_stores(cfg, services(refusing, Readers(reader))) as stores:
        stores["local"], stores["prod"]
    assert (refusing.connected, refusing.closed) == (["local"], ["local"])


def test_an_undeclared_target_has_no_store() -> None:
    conns, reader = world("local")
    with pipeline.opened_stores(config(entry()), services(conns, Readers(reader))) as stores, \
            pytest.raises(KeyError):
        stores["elsewhere"]
    assert conns.connected == []


def test_leases_plan_and_apply_share_one_connection_per_target() -> None:
    """The issue: leases, plan and apply each connected again (3 per target), never closed."""
    held = fakes("local", "prod")
    conns, reader = Connections(held), FakeReader({"r": CAT})
    cfg = config(entry(), entry(target="prod"), targets=("local", "prod"))
    svc = services(conns, Readers(reader), clock=NOW)
    with pipeline.opened_stores(cfg, svc, operation_timeout=60) as stores, \
            pipeline.leases(cfg, ["local", "prod"], stores, timeout=0, ttl=60,
                            on_wait=lambda *_: None, on_note=lambda _: None):
        plan = pipeline.make_plan(cfg, stores, reader, targets=None, allow_empty=False,
                                  now=NOW, locks=None)
        result = pipeline.apply_plan(cfg, plan, stores, reader, reporter=SilentReporter())
        assert all(LEASE_KEY in store.config for store in held.values())
    assert result.ok and len(result.outcomes) == 2
    assert sorted(conns.connected) == ["local", "prod"]
    assert conns.operation_timeouts == [60, 60]
    assert conns.still_open == [] and sorted(conns.closed) == ["local", "prod"]


def test_a_saved_plans_freshness_check_and_apply_share_the_connection() -> None:
    conns, reader = world("local", "prod")
    cfg = config(entry(), targets=("local", "prod"))
    svc = services(conns, Readers(reader))
    with pipeline.opened_stores(cfg, svc) as stores:
        plan = pipeline.make_plan(cfg, stores, reader, targets=None, allow_empty=False,
                                  now=NOW, locks=None)
    later = Connections(conns.stores)  # apply PLAN: another command
    with pipeline.opened_stores(cfg, services(later, Readers(reader))) as stores:
        pipeline.check_fresh(cfg, plan, "plan.json", stores)
        assert pipeline.apply_plan(cfg, plan, stores, reader, reporter=SilentReporter()).ok
    assert later.connected == ["local"] and later.still_open == []


def test_closed_stores_connect_nothing_more() -> None:
    conns, reader = world("local")
    with pipeline.opened_stores(config(entry()), services(conns, Readers(reader))) as stores:
        assert "local" in stores and "elsewhere" not in stores
        assert conns.connected == []  # `in` connects nothing
        stores["local"]
    with pytest.raises(RuntimeError):
        stores["local"]
    assert (conns.connected, conns.closed) == (["local"], ["local"])
