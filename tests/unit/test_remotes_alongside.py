"""``plan`` reads the remotes while it observes the stores, and reports failures as before:
a store's error before a remote's, the first remote (by name) that fails."""

from __future__ import annotations

import threading

import pytest

from reconciler import pipeline
from reconciler.errors import PlanError, RemoteError, StoreError
from reconciler.model.config import RemoteSpec
from reconciler.model.observed import TargetState
from reconciler.model.remote import RemoteCatalog
from tests.support.builders import NOW, build, catalog, config, entry
from tests.support.fakes import FakeReader, FakeStore

CAT = catalog(build("deb/1", 1))
PATIENCE = 30.0
"""How long a fake waits for the other side before it calls the run sequential (never
reached when the run is concurrent)."""


class Handshake:
    """The reader starts fetching; only then does the store finish observing."""

    def __init__(self) -> None:
        self.fetching = threading.Event()
        self.fetch_thread: str | None = None


class WaitingStore(FakeStore):
    def __init__(self, shake: Handshake, *, fail: bool = False) -> None:
        super().__init__(universe={"r": CAT})
        self.shake, self.fail = shake, fail

    def observe(self) -> TargetState:
        assert self.shake.fetching.wait(PATIENCE), "the remotes were not read alongside"
        if self.fail:
            raise StoreError("local", "the daemon went away")
        return super().observe()


class SignallingReader(FakeReader):
    def __init__(self, shake: Handshake, *, fail: set[str] | None = None) -> None:
        super().__init__({"r": CAT, "s": CAT})
        self.shake, self.fail = shake, fail or set()

    def fetch_catalog(self, remote: RemoteSpec) -> RemoteCatalog:
        self.shake.fetch_thread = threading.current_thread().name
        self.shake.fetching.set()
        if remote.name in self.fail:
            raise RemoteError(remote.name, "cannot connect")
        return super().fetch_catalog(remote)


def plan(store: FakeStore, reader: FakeReader, *entries: object) -> object:
    cfg = config(*(entries or (entry(),)))  # type: ignore[arg-type]
    cfg = cfg.model_copy(update={"remotes": {**cfg.remotes, "s": RemoteSpec(
        name="s", url="https://s.test", protocol="simplestreams")}})
    return pipeline.make_plan(cfg, {"local": store}, reader, targets=None,
                              allow_empty=False, now=NOW, locks=None)


def test_the_remotes_are_read_while_the_stores_are_observed() -> None:
    shake = Handshake()
    plan(WaitingStore(shake), SignallingReader(shake))
    assert shake.fetch_thread not in (None, threading.current_thread().name)


def test_a_store_error_comes_before_a_remote_error() -> None:
    shake = Handshake()
    with pytest.raises(StoreError, match="went away"):
        plan(WaitingStore(shake, fail=True), SignallingReader(shake, fail={"r"}))


def test_a_remote_error_is_reported_when_the_stores_are_fine() -> None:
    shake = Handshake()
    with pytest.raises(RemoteError, match="remote 'r'"):
        plan(WaitingStore(shake), SignallingReader(shake, fail={"r", "s"}),
             entry("r:deb/1"), entry("s:deb/1"))


def test_the_first_remote_by_name_that_fails_is_reported() -> None:
    shake = Handshake()
    with pytest.raises(RemoteError, match="remote 's'"):
        plan(WaitingStore(shake), SignallingReader(shake, fail={"s"}),
             entry("r:deb/1"), entry("s:deb/1"))


class OneDaemon(FakeStore):
    """A store whose daemon identity is the same as every other OneDaemon's."""

    def observe(self) -> TargetState:
        return super().observe().model_copy(update={"server_fingerprint": "abc"})


def test_a_conflict_between_stores_comes_before_a_remote_error() -> None:
    """--target: a left-out target on the same store is still checked first."""
    shake = Handshake()
    cfg = config(entry(target="a"), entry(target="b"), targets=("a", "b"))
    cfg = cfg.model_copy(update={"targets": {
        n: t.model_copy(update={"url": "unix:///run/same.socket"})
        for n, t in cfg.targets.items()}})
    stores = {n: OneDaemon(n, universe={"r": CAT}) for n in ("a", "b")}
    with pytest.raises(PlanError, match="reach one image store"):
        pipeline.make_plan(cfg, stores, SignallingReader(shake, fail={"r"}), targets=["a"],
                           allow_empty=False, now=NOW, locks=None)
