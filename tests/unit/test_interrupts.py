"""SIGINT and SIGTERM: one ``Interrupted`` in the main thread, leases released, one line.

Real signals are sent to this process (``os.kill(os.getpid(), ...)``) only inside
``interrupts.handled()``, which puts pytest's own handlers back afterwards.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from reconciler import interrupts
from reconciler.apply.executor import apply_plan
from reconciler.apply.lease import LEASE_KEY, LeaseRecord, Leases
from reconciler.core.planner import make_plan
from reconciler.errors import Interrupted, LeaseHeld
from reconciler.model.plan import PullSource
from reconciler.render.progress import change_label
from tests.support.builders import NOW, build, catalog, config, entry
from tests.support.clocks import RunningClock
from tests.support.fakes import FakeReader, FakeStore

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
FAR = datetime(2099, 1, 1, tzinfo=UTC)  # a holder's lease that will not lapse during a test


def kill_me(sig: int = signal.SIGTERM) -> None:
    os.kill(os.getpid(), sig)


# -- the error and its line -------------------------------------------------------------------

def test_exit_codes_and_the_one_line() -> None:
    term = Interrupted(signal.SIGTERM)
    assert (term.exit_code, str(term)) == (143, "interrupted (SIGTERM)")
    stop = Interrupted(signal.SIGINT)
    stop.waiting = "stopped while waiting for the lease on target 'local'"
    stop.progress = "nothing was changed"
    assert stop.exit_code == 130
    assert str(stop) == ("interrupted (SIGINT): stopped while waiting for the lease on target "
                         "'local'; nothing was changed")
    assert not isinstance(stop, Exception)  # no `except Exception` swallows it


# -- the handlers ----------------------------------------------------------------------------

def test_a_signal_raises_once_in_the_main_thread_and_handlers_are_put_back() -> None:
    before = {s: signal.getsignal(s) for s in interrupts.SIGNALS}
    with interrupts.handled():
        with pytest.raises(Interrupted) as caught:
            kill_me(signal.SIGINT)
            time.sleep(5)
        assert caught.value.signum == signal.SIGINT
        kill_me(signal.SIGTERM)  # a second signal: ignored, the way out must finish
        time.sleep(0.05)
    assert {s: signal.getsignal(s) for s in interrupts.SIGNALS} == before


def test_deferred_holds_a_signal_until_the_block_ends() -> None:
    done: list[str] = []
    with interrupts.handled(), pytest.raises(Interrupted), interrupts.deferred():
        kill_me()
        time.sleep(0.05)
        done.append("released")
    assert done == ["released"]


def test_a_signal_held_back_outlives_a_failure_of_the_block() -> None:
    with interrupts.handled(), pytest.raises(Interrupted) as caught, interrupts.deferred():
        kill_me()
        time.sleep(0.05)
        raise RuntimeError("the release failed")
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_an_ignored_signal_stays_ignored() -> None:
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with interrupts.handled():
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_threads_started_without_signals_leave_them_to_the_main_thread() -> None:
    masks: list[set[signal.Signals]] = []
    with interrupts.threads_without_signals():
        worker = threading.Thread(target=lambda: masks.append(
            signal.pthread_sigmask(signal.SIG_BLOCK, set())))
        worker.start()
    worker.join()
    assert set(interrupts.SIGNALS) <= masks[0]
    assert not set(interrupts.SIGNALS) & signal.pthread_sigmask(signal.SIG_BLOCK, set())


# -- the leases --------------------------------------------------------------------------------

def held(store: FakeStore) -> LeaseRecord | None:
    return LeaseRecord.decode(store.config.get(LEASE_KEY, ""))


def test_a_signal_while_waiting_for_the_lease_leaves_the_holders_lease_alone() -> None:
    store = FakeStore()
    theirs = LeaseRecord("ci@elsewhere:1", T0, FAR, "theirs")
    store.config[LEASE_KEY] = theirs.encode()
    with interrupts.handled(), pytest.raises(Interrupted) as caught, Leases(
            [("local", store)], owner="web", timeout=60, poll=0.05,
            on_wait=lambda t, r: kill_me(), on_note=print, clock=RunningClock(T0)):
        pytest.fail("the lease was taken")
    assert str(caught.value) == ("interrupted (SIGTERM): stopped while waiting for the lease "
                                 "on target 'local'")
    assert held(store) is not None and held(store).token == "theirs"  # type: ignore[union-attr]


def test_a_signal_right_after_the_lease_was_stored_still_releases_it() -> None:
    """The daemon stored the lease, the signal lands before take() returns."""
    store = FakeStore()
    real_patch = store.patch_server_config

    def patch_then_signal(values: dict[str, str], etag: str) -> None:
        real_patch(values, etag)
        if values.get(LEASE_KEY):
            kill_me()
            time.sleep(5)

    store.patch_server_config = patch_then_signal  # type: ignore[method-assign]
    with interrupts.handled(), pytest.raises(Interrupted) as caught, Leases(
            [("local", store)], owner="web", on_wait=lambda t, r: None, on_note=print,
            clock=RunningClock(T0)):
        pytest.fail("the block ran")
    assert caught.value.leases == "lease released"
    assert LEASE_KEY not in store.config


def test_a_signal_inside_the_block_releases_and_says_so() -> None:
    store = FakeStore()
    with interrupts.handled(), pytest.raises(Interrupted) as caught, Leases(
            [("local", store)], owner="web", on_wait=lambda t, r: None, on_note=print,
            clock=RunningClock(T0)):
        assert held(store) is not None
        kill_me()
        time.sleep(5)
    assert caught.value.leases == "lease released"
    assert LEASE_KEY not in store.config


def test_a_signal_during_the_release_does_not_cut_it_short() -> None:
    store = FakeStore()
    real_get = store.get_server_config
    signalled: list[bool] = []

    def get_with_a_signal() -> tuple[dict[str, str], str]:
        if held(store) is not None and not signalled:  # the release's GET
            signalled.append(True)
            kill_me()
            time.sleep(0.05)
        return real_get()

    with interrupts.handled(), pytest.raises(Interrupted) as caught, Leases(
            [("local", store)], owner="web", on_wait=lambda t, r: None, on_note=print,
            clock=RunningClock(T0)):
        store.get_server_config = get_with_a_signal  # type: ignore[method-assign]
    assert signalled and LEASE_KEY not in store.config
    assert caught.value.leases == "lease released"


def test_a_signal_during_a_failed_acquire_is_raised_after_the_release() -> None:
    first, second = FakeStore("a"), FakeStore("b")
    second.config[LEASE_KEY] = LeaseRecord("ci@elsewhere:1", T0, FAR, "theirs").encode()
    real_get = first.get_server_config
    calls: list[int] = []

    def get_signalling_on_release() -> tuple[dict[str, str], str]:
        calls.append(1)
        if len(calls) == 2:  # the first lease's release, after 'b' refused
            kill_me()
            time.sleep(0.05)
        return real_get()

    first.get_server_config = get_signalling_on_release  # type: ignore[method-assign]
    with interrupts.handled(), pytest.raises(Interrupted) as caught, Leases(
            [("a", first), ("b", second)], owner="web", timeout=0,
            on_wait=lambda t, r: None, on_note=print, clock=RunningClock(T0)):
        pass
    assert isinstance(caught.value.__context__, LeaseHeld)
    assert LEASE_KEY not in first.config


def test_a_signal_just_before_the_release_started_still_releases(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The signal lands between the block's end and the shield going up: released anyway."""
    from contextlib import contextmanager

    import reconciler.apply.lease

    real = interrupts.deferred
    entered: list[bool] = []

    @contextmanager
    def late_first_time() -> Iterator[None]:
        if not entered:
            entered.append(True)
            raise Interrupted(signal.SIGTERM)
        with real():
            yield

    store = FakeStore()
    monkeypatch.setattr(reconciler.apply.lease, "deferred", late_first_time)
    with pytest.raises(Interrupted) as caught, Leases(
            [("local", store)], owner="web", on_wait=lambda t, r: None, on_note=print,
            clock=RunningClock(T0)):
        assert held(store) is not None
    assert caught.value.leases == "lease released"
    assert LEASE_KEY not in store.config


def test_leases_a_block_never_released_are_released_at_the_end() -> None:
    """Last resort: leases left held (no __exit__ ran) go when the object does."""
    import gc

    store = FakeStore()
    leases = Leases([("local", store)], owner="web", on_wait=lambda t, r: None,
                    on_note=print, clock=RunningClock(T0))
    leases.__enter__()
    assert held(store) is not None
    leases._stop.set()  # the renewal thread holds a reference while it runs
    assert leases._thread is not None
    leases._thread.join()
    del leases
    gc.collect()
    assert LEASE_KEY not in store.config


# -- apply ---------------------------------------------------------------------------------

class SignallingStore(FakeStore):
    """Sends SIGTERM to this process from apply's worker thread during ``pull_image``,
    then takes a while to finish that change (as a daemon operation would): until the
    main thread has taken the signal, and 0.3 s more for it to tell apply to stop (on a
    loaded machine the main thread may not run for a while)."""

    def pull_image(self, pull: PullSource, **kw: Any) -> str:
        fingerprint = super().pull_image(pull, **kw)
        if not getattr(self, "signalled", False):
            self.signalled = True
            kill_me()
            deadline = time.monotonic() + 30
            while interrupts._state.fired is None and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.3)
        return fingerprint


def test_a_signal_stops_apply_before_the_next_change() -> None:
    """The signal is sent from a worker thread: the workers block it, so the main thread
    gets it at once, tells every target to stop, and lets the change under way finish."""
    builds = [build(f"os/{n}", 1) for n in (1, 2, 3)]
    cat = catalog(*builds)
    store = SignallingStore(universe={"r": cat})
    cfg = config(*(entry(f"r:os/{n}", f"os{n}") for n in (1, 2, 3)))
    plan = make_plan(cfg, {"r": cat}, {"local": store.observe()}, now=NOW)
    assert len(plan.changes) == 6
    second = plan.changes[1]
    with interrupts.handled(), pytest.raises(Interrupted) as caught:
        apply_plan(plan, stores={"local": store}, reader=FakeReader({"r": cat}),
                   remotes=cfg.remotes)
    assert caught.value.progress == (
        f"stopped before {change_label(second)} on target 'local' (1 of 6 changes made)")
    assert set(store.images) == {builds[0].fingerprint}  # the change under way finished
    assert store.aliases == {}



# -- a signal whose exception Python dropped -------------------------------------------------

def drop_a_signal_in_a_weakref_callback(sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` while Python runs a weakref callback: the handler's ``Interrupted`` is
    raised in there, where Python cannot raise it, only hand it to ``sys.unraisablehook``."""

    class Thing:
        pass

    def callback(_ref: object) -> None:
        kill_me(sig)
        for _ in range(10_000):  # the handler runs in here
            pass

    thing = Thing()
    ref = weakref.ref(thing, callback)
    del thing
    assert ref() is None


def test_an_interrupt_python_dropped_is_kept_and_raised_once_at_the_next_check(
        capsys: pytest.CaptureFixture[str]) -> None:
    hook = sys.unraisablehook
    with interrupts.handled():
        drop_a_signal_in_a_weakref_callback()
        assert interrupts.lost() == signal.SIGTERM  # the run went on...
        worker: list[BaseException] = []
        thread = threading.Thread(target=lambda: worker.append(Exception("no raise"))
                                  if interrupts.check() is None else None)
        thread.start()
        thread.join()
        assert interrupts.lost() == signal.SIGTERM  # ...a worker's check raises nothing
        with pytest.raises(Interrupted) as caught:
            interrupts.check()  # ...until the main thread's next check point
        assert caught.value.signum == signal.SIGTERM
        interrupts.check()  # once
        assert interrupts.lost() is None
    assert sys.unraisablehook is hook
    assert "Exception ignored" not in capsys.readouterr().err


def test_other_exceptions_python_cannot_raise_are_still_reported(
        capsys: pytest.CaptureFixture[str]) -> None:
    class Noisy:
        def __del__(self) -> None:
            raise ValueError("from __del__")

    with interrupts.handled():
        Noisy()
        assert interrupts.lost() is None
    assert "ValueError: from __del__" in capsys.readouterr().err


def test_an_interrupt_dropped_before_apply_changes_nothing() -> None:
    builds = [build(f"os/{n}", 1) for n in (1, 2)]
    cat = catalog(*builds)
    store = FakeStore(universe={"r": cat})
    cfg = config(*(entry(f"r:os/{n}", f"os{n}") for n in (1, 2)))
    plan = make_plan(cfg, {"r": cat}, {"local": store.observe()}, now=NOW)
    with interrupts.handled(), pytest.raises(Interrupted) as caught:
        drop_a_signal_in_a_weakref_callback(signal.SIGINT)
        apply_plan(plan, stores={"local": store}, reader=FakeReader({"r": cat}),
                   remotes=cfg.remotes)
    assert caught.value.signum == signal.SIGINT
    assert caught.value.progress == (
        f"stopped before {change_label(plan.changes[0])} on target 'local' "
        f"(0 of 4 changes made)")
    assert store.images == {} and store.aliases == {}


class DroppingStore(FakeStore):
    """After the first pull, hands ``sys.unraisablehook`` an ``Interrupted`` as Python
    does when the signal's handler ran inside a weakref callback (the handler having
    noted the signal first)."""

    def pull_image(self, pull: PullSource, **kw: Any) -> str:
        fingerprint = super().pull_image(pull, **kw)
        if not getattr(self, "dropped", False):
            self.dropped = True
            interrupts._state.fired = signal.SIGTERM
            exc = Interrupted(signal.SIGTERM)
            sys.unraisablehook(SimpleNamespace(  # type: ignore[arg-type]
                exc_type=Interrupted, exc_value=exc, exc_traceback=None,
                err_msg="Exception ignored in", object=None))
        return fingerprint


def test_an_interrupt_dropped_during_apply_stops_it_before_the_next_change() -> None:
    builds = [build(f"os/{n}", 1) for n in (1, 2, 3)]
    cat = catalog(*builds)
    store = DroppingStore(universe={"r": cat})
    cfg = config(*(entry(f"r:os/{n}", f"os{n}") for n in (1, 2, 3)))
    plan = make_plan(cfg, {"r": cat}, {"local": store.observe()}, now=NOW)
    with interrupts.handled(), pytest.raises(Interrupted) as caught:
        apply_plan(plan, stores={"local": store}, reader=FakeReader({"r": cat}),
                   remotes=cfg.remotes, pulls=1)
    assert caught.value.signum == signal.SIGTERM
    assert caught.value.progress == (
        f"stopped before {change_label(plan.changes[1])} on target 'local' "
        f"(1 of 6 changes made)")
    assert set(store.images) == {builds[0].fingerprint}
