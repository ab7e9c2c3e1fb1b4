"""The lease: the pure decision with an injected clock, then the thin loop on a fake store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.apply.lease import (
    LEASE_KEY,
    Holder,
    Lease,
    LeaseRecord,
    Leases,
    Verdict,
    _start_without_signals,
    claim,
    decide,
    holder_name,
    local_host,
    process_gone,
)
from reconciler.core.inventory import encode, parse_config
from reconciler.errors import LeaseHeld, LeaseLost
from reconciler.model.observed import Inventory, inventory_key
from tests.support.clocks import RunningClock
from tests.support.fakes import FakeStore

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TTL = timedelta(seconds=60)


class FakeClock:
    """Time that moves only when someone sleeps."""

    def __init__(self, start: datetime = T0) -> None:
        self.t = start
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += timedelta(seconds=seconds)


def record(token: str = "other", *, holder: str = "web@ci-1:42", since: datetime = T0,
           expires: datetime = T0 + TTL) -> LeaseRecord:
    return LeaseRecord(holder=holder, since=since, expires=expires, token=token)


# -- the pure core ------------------------------------------------------------------------

@pytest.mark.parametrize(("current", "now", "verdict"), [
    (None, T0, Verdict.FREE),
    (record("me"), T0, Verdict.OURS),
    (record("me", expires=T0 - TTL), T0, Verdict.OURS),  # ours, even when lapsed
    (record(), T0, Verdict.HELD),
    (record(), T0 + TTL - timedelta(microseconds=1), Verdict.HELD),
    (record(), T0 + TTL, Verdict.EXPIRED),  # expiry is the first instant it is free
    (record(), T0 + TTL * 10, Verdict.EXPIRED),
])
def test_decide(current: LeaseRecord | None, now: datetime, verdict: Verdict) -> None:
    assert decide(current, token="me", now=now) is verdict


def test_a_lease_whose_holder_is_gone_is_abandoned() -> None:
    assert decide(record(), token="me", now=T0, holder_gone=True) is Verdict.ABANDONED
    assert Verdict.ABANDONED.takeable and not Verdict.HELD.takeable
    assert decide(record("me"), token="me", now=T0, holder_gone=True) is Verdict.OURS


ME = Holder(name="h", token="me", host="boot/1", pid=7)


def test_claim_keeps_since_only_when_ours() -> None:
    later = T0 + timedelta(seconds=20)
    renewed = claim(record("me"), me=ME, now=later, ttl=TTL)
    assert (renewed.since, renewed.expires, renewed.token) == (T0, later + TTL, "me")
    taken = claim(record("other", expires=T0), me=ME, now=later, ttl=TTL)
    assert taken == LeaseRecord("h", later, later + TTL, "me", "boot/1", 7)
    fresh = claim(None, me=ME, now=T0, ttl=TTL)
    assert (fresh.since, fresh.expires) == (T0, T0 + TTL)


def test_record_round_trips_and_garbage_reads_as_free() -> None:
    r = record()
    assert LeaseRecord.decode(r.encode()) == r
    assert LeaseRecord.decode(claim(None, me=ME, now=T0, ttl=TTL).encode()) == LeaseRecord(
        "h", T0, T0 + TTL, "me", "boot/1", 7)
    assert LeaseRecord.decode('{"holder":"x","since":"2026-11-27T12:00:00Z",'
                              '"expires":"2026-11-27T12:01:00Z"}') == LeaseRecord(
        "x", T0, T0 + TTL, "")
    assert LeaseRecord.decode("") is None
    for junk in ("{", "[]", '{"holder": "x"}', '{"holder":"x","since":"no","expires":"no"}',
                 "[" * 100_000 + "]" * 100_000, '{"holder":' + "[" * 100_000):
        assert LeaseRecord.decode(junk) is None
    assert r.describe() == ("web@ci-1:42 since 2026-11-27T12:00:00Z "
                            "(lease expires 2026-11-27T12:01:00Z)")


def test_holder_name_is_owner_at_host_pid() -> None:
    name = holder_name("platform-web")
    owner, _, rest = name.partition("@")
    host, _, pid = rest.rpartition(":")
    assert owner == "platform-web" and host and pid == str(os.getpid())


def test_process_gone_only_when_sure() -> None:
    assert not process_gone(os.getpid())
    assert not process_gone(0) and not process_gone(-1)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert process_gone(child.pid)
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while not process_gone(zombie.pid):  # exited, not yet reaped: a zombie is gone too
        assert time.monotonic() < deadline
        time.sleep(0.01)
    zombie.wait()


def test_local_host_names_this_boot_and_pid_namespace() -> None:
    here = local_host()
    if Path("/proc/self/ns/pid").exists():
        assert here and here == local_host()


def test_lease_key_is_neither_a_setting_nor_an_inventory() -> None:
    inv = Inventory(owner="lease", project="default")  # an owner may be called "lease"
    config = {LEASE_KEY: record().encode(), "images.auto_update_interval": "6",
              inventory_key("lease", "default"): encode(inv.model_copy(update={
                  "server": {"images.auto_update_interval": "6"}}))}
    for project in ("default", "lease", "web"):
        plain, inventories = parse_config(config, project)
        assert plain == {"images.auto_update_interval": "6"}
        assert set(inventories) == ({"lease"} if project == "default" else set())


# -- the loop -----------------------------------------------------------------------------

def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for the renewal thread (real time) to bring ``condition`` about."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def lease(store: FakeStore, clock: FakeClock, token: str = "me", *,
          gone: bool = False) -> Lease:
    return Lease("local", store, me=Holder(name=f"web@here:{token}", token=token), ttl=TTL,
                 clock=clock, gone=lambda record: gone)


def stored(store: FakeStore) -> LeaseRecord | None:
    return LeaseRecord.decode(store.config.get(LEASE_KEY, ""))


def test_take_free_then_renew_then_release() -> None:
    store, clock = FakeStore(), FakeClock()
    mine = lease(store, clock)
    assert mine.take() is None
    assert stored(store) == LeaseRecord("web@here:me", T0, T0 + TTL, "me")
    clock.t += timedelta(seconds=30)
    assert mine.take() is None
    assert stored(store) == LeaseRecord("web@here:me", T0, clock.t + TTL, "me")
    mine.release()
    assert LEASE_KEY not in store.config


def test_held_lease_blocks_and_is_never_released_by_another() -> None:
    store, clock = FakeStore(), FakeClock()
    theirs, mine = lease(store, clock, "them"), lease(store, clock)
    assert theirs.take() is None
    blocker = mine.take()
    assert blocker is not None and blocker.token == "them"
    mine.release()
    assert stored(store) == blocker


def test_an_abandoned_lease_is_taken_at_once() -> None:
    store, clock = FakeStore(), FakeClock()
    store.config[LEASE_KEY] = record().encode()
    assert lease(store, clock, gone=True).take() is None
    held = stored(store)
    assert held is not None and held.token == "me"


def test_a_dead_local_holder_is_detected_a_remote_one_is_not() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    here = local_host()
    dead_here = LeaseRecord("web@here:1", T0, T0 + TTL, "other", here, child.pid)
    store, clock = FakeStore(), FakeClock()
    mine = Lease("local", store, me=Holder(name="me", token="me", host=here), ttl=TTL,
                 clock=clock)
    store.config[LEASE_KEY] = dead_here.encode()
    assert mine.take() is (None if here else dead_here)
    elsewhere = LeaseRecord("web@there:1", T0, T0 + TTL, "other", "another-boot/1", child.pid)
    store.config[LEASE_KEY] = elsewhere.encode()
    assert mine.take() == elsewhere


def test_take_retries_when_the_config_changed_under_it() -> None:
    store, clock = FakeStore(), FakeClock()
    real_get = store.get_server_config
    raced: list[bool] = []

    def get_then_race() -> tuple[dict[str, str], str]:
        got = real_get()
        if not raced:  # another writer lands between our GET and PATCH, once
            raced.append(True)
            store.patch_server_config({"user.other": "x"}, str(store.etag))
        return got

    store.get_server_config = get_then_race  # type: ignore[method-assign]
    assert lease(store, clock).take() is None
    assert stored(store) is not None and store.config["user.other"] == "x"


def test_acquire_waits_for_expiry_and_reports_the_holder_once() -> None:
    store, clock = FakeStore(), FakeClock()
    store.config[LEASE_KEY] = record(expires=T0 + timedelta(seconds=5)).encode()
    heard: list[tuple[str, str]] = []
    lease(store, clock).acquire(timeout=300, poll=1.0,
                                on_wait=lambda t, r: heard.append((t, r.holder)))
    assert heard == [("local", "web@ci-1:42")]
    held = stored(store)
    assert held is not None and held.token == "me"
    assert T0 + timedelta(seconds=5) <= clock.t < T0 + timedelta(seconds=6)


def test_acquire_gives_up_after_the_timeout_naming_holder_and_since() -> None:
    store, clock = FakeStore(), FakeClock()
    store.config[LEASE_KEY] = record().encode()
    with pytest.raises(LeaseHeld) as caught:
        lease(store, clock).acquire(timeout=2, poll=1.0, on_wait=lambda t, r: None)
    assert str(caught.value) == (
        "target 'local' is locked by web@ci-1:42 since 2026-11-27T12:00:00Z (lease expires "
        "2026-11-27T12:01:00Z); gave up after 2s (--lock-timeout)")
    assert clock.t == T0 + timedelta(seconds=2)
    assert stored(store) == record()


def test_acquire_with_zero_timeout_tries_once() -> None:
    store, clock = FakeStore(), FakeClock()
    store.config[LEASE_KEY] = record().encode()
    with pytest.raises(LeaseHeld):
        lease(store, clock).acquire(timeout=0, on_wait=lambda t, r: None)
    assert clock.slept == []


def test_leases_release_on_failure_and_share_one_daemon() -> None:
    store = FakeStore()
    notes: list[str] = []
    with pytest.raises(RuntimeError), Leases(
            [("a", store), ("b", store)], owner="web", on_wait=lambda t, r: None,
            on_note=notes.append, clock=RunningClock(T0)):
        held = stored(store)
        assert held is not None and held.holder == holder_name("web")
        raise RuntimeError("apply failed")
    assert LEASE_KEY not in store.config
    assert notes == []


def test_a_failed_second_lease_releases_the_first() -> None:
    first, second = FakeStore("a"), FakeStore("b")
    second.config[LEASE_KEY] = record().encode()
    with pytest.raises(LeaseHeld), Leases([("a", first), ("b", second)], owner="web",
                                          timeout=0, on_wait=lambda t, r: None,
                                          on_note=print, clock=FakeClock()):
        pass
    assert LEASE_KEY not in first.config
    assert stored(second) == record()


def test_lease_is_renewed_in_the_background() -> None:
    store = FakeStore()
    with Leases([("local", store)], owner="web", ttl=0.3, on_wait=lambda t, r: None,
                on_note=print, clock=RunningClock(T0)):
        first = stored(store)
        assert first is not None
        eventually(lambda: (stored(store) or first).expires > first.expires)
        later = stored(store)
    assert later is not None and later.since == first.since
    assert LEASE_KEY not in store.config


def test_a_lease_taken_over_while_running_is_an_error_and_left_alone() -> None:
    store = FakeStore()
    usurper = record("them", expires=datetime(2099, 1, 1, tzinfo=UTC))
    with pytest.raises(LeaseLost, match="taken over by web@ci-1:42"), Leases(
            [("local", store)], owner="web", ttl=0.3, on_wait=lambda t, r: None,
            on_note=print, clock=RunningClock(T0)) as held:
        store.config[LEASE_KEY] = usurper.encode()
        eventually(lambda: bool(held.lost))
    assert stored(store) == usurper


def test_the_renewal_thread_leaves_signals_to_the_main_thread() -> None:
    seen: list[set[signal.Signals]] = []
    thread = threading.Thread(target=lambda: seen.append(
        signal.pthread_sigmask(signal.SIG_BLOCK, set())))
    before = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    _start_without_signals(thread)
    thread.join()
    assert {signal.SIGINT, signal.SIGTERM} <= seen[0]
    assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == before  # main thread unchanged


class HeldBackWrites(FakeStore):
    """The first renewal's write is held back ``hold`` seconds, as the daemon holds every
    config write while it lists images; notes when each write started and ended."""

    def __init__(self, hold: float) -> None:
        super().__init__()
        self.hold = hold
        self.writes: list[tuple[float, float]] = []

    def patch_server_config(self, changes: dict[str, str], etag: str) -> str:
        started = time.monotonic()
        if len(self.writes) == 1:  # the first renewal (the first write took the lease)
            time.sleep(self.hold)
        try:
            return super().patch_server_config(changes, etag)
        finally:
            self.writes.append((started, time.monotonic()))


def test_after_a_renewal_the_daemon_held_back_the_next_comes_at_once() -> None:
    """Renewals are a third of the time to live apart from start to start: a renewal
    held back for longer is followed at once, while its lease may still be renewed."""
    store = HeldBackWrites(hold=0.8)
    with Leases([("local", store)], owner="web", ttl=1.5, on_wait=lambda t, r: None,
                on_note=print, clock=RunningClock(T0)) as held:
        eventually(lambda: len(store.writes) >= 3)
        assert not held.lost
    (_, took), (_, held_back_end), (next_start, _) = store.writes[:3]
    assert held_back_end - took >= 0.8 + 0.5 - 0.1  # a third of 1.5 s, then held 0.8 s
    assert next_start - held_back_end < 0.25  # not a third (0.5 s) later


def test_every_target_on_a_daemon_whose_lease_was_taken_over_is_halted() -> None:
    from reconciler.model.config import TargetSpec
    from reconciler.pipeline import lease_lost
    from tests.support.builders import config

    cfg = config(targets=("a", "b", "c"))
    shared = TargetSpec(name="b", url=cfg.targets["a"].url, project="other")
    cfg = cfg.model_copy(update={"targets": {**cfg.targets, "b": shared}})
    held = Leases([("a", FakeStore()), ("c", FakeStore())], owner="web",
                  on_wait=lambda t, r: None, on_note=print)
    why = lease_lost(cfg, ["a", "b", "c"], held)
    assert [why(t) for t in ("a", "b", "c")] == [None, None, None]
    held.lost["a"] = record("them")
    said = "not attempted: the lease on this target was taken over by web@ci-1:42 since"
    assert [(why(t) or "").startswith(said) for t in ("a", "b", "c")] == [True, True, False]
