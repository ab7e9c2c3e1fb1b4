"""Read-only work in daemon threads (reconciler.background): bounded, ordered, abandonable."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

import pytest

from reconciler.background import each_in_background, in_background


def test_every_work_runs_and_each_result_or_error_is_in_its_own_future() -> None:
    def boom() -> int:
        raise ValueError("b failed")

    futures = each_in_background({"a": lambda: 1, "b": boom, "c": lambda: 3}, 2)
    assert list(futures) == ["a", "b", "c"]
    assert futures["a"].result(5) == 1
    with pytest.raises(ValueError, match="b failed"):
        futures["b"].result(5)
    assert futures["c"].result(5) == 3


def test_at_most_at_once_works_run_together_and_they_start_in_order() -> None:
    lock = threading.Lock()
    running, most, started = [0], [0], []

    def work(key: str) -> Callable[[], str]:
        def run() -> str:
            with lock:
                started.append(key)
                running[0] += 1
                most[0] = max(most[0], running[0])
            time.sleep(0.02)
            with lock:
                running[0] -= 1
            return key
        return run

    keys = [f"t{n}" for n in range(7)]
    futures = each_in_background({k: work(k) for k in keys}, 3)
    assert [futures[k].result(5) for k in keys] == keys
    assert most[0] == 3
    assert started[:3] == sorted(started[:3], key=keys.index)  # taken in order


def test_the_work_threads_are_daemons_with_the_signals_blocked() -> None:
    seen: list[tuple[bool, set[int]]] = []

    def look() -> None:
        seen.append((threading.current_thread().daemon,
                     set(signal.pthread_sigmask(signal.SIG_BLOCK, []))))

    each_in_background({"x": look}, 1)["x"].result(5)
    in_background(look)()
    for daemon, blocked in seen:
        assert daemon
        assert {signal.SIGINT, signal.SIGTERM} <= blocked


def test_a_caller_that_stops_waiting_is_not_held_by_the_works_still_running() -> None:
    """What an interrupt does: the caller leaves; a work that ends later changes nothing."""
    release = threading.Event()
    futures = each_in_background({"slow": lambda: release.wait(30), "next": lambda: 2}, 1)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        futures["slow"].result(0.05)
    assert time.monotonic() - started < 1
    assert not futures["next"].done()  # one at a time: it waits its turn
    release.set()
    assert futures["next"].result(5) == 2


def test_in_background_hands_its_error_to_the_caller() -> None:
    def boom() -> None:
        raise RuntimeError("remote failed")

    result = in_background(boom)
    with pytest.raises(RuntimeError, match="remote failed"):
        result()
