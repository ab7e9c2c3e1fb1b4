"""Read-only work in background threads that the main thread can walk away from.

Invariants:

* The work given here only reads (an observation, a remote's index): abandoning it
  halfway loses nothing.  Work that writes runs in the executor's pools, whose changes
  under way are always waited for.
* Each piece runs in a daemon thread started with SIGINT and SIGTERM blocked
  (:func:`reconciler.interrupts.start_thread`), so the signals reach the main thread.
* A caller that stops waiting (an interrupt, or an error of its own) does not wait
  for what is still running, and neither does the process's exit: a daemon's list of
  thousands of images can take minutes to come, and a CI runner's cancel gives seconds.
  A worker that finishes after that hands its result to nobody.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import TypeVar, cast

from reconciler.interrupts import start_thread

_T = TypeVar("_T")


def in_background(work: Callable[[], _T]) -> Callable[[], _T]:
    """Start ``work`` in a daemon thread now (this thread's context variables copied); the
    returned callable waits for it and returns its result or raises its error."""
    done: list[tuple[_T | None, BaseException | None]] = []
    context = contextvars.copy_context()

    def run() -> None:
        try:
            done.append((context.run(work), None))
        except BaseException as exc:  # handed to the caller
            done.append((None, exc))

    thread = threading.Thread(target=run, name="incus-images-remotes", daemon=True)
    start_thread(thread)

    def result() -> _T:
        thread.join()
        value, error = done[0]
        if error is not None:
            raise error
        return cast(_T, value)

    return result


def each_in_background(works: Mapping[str, Callable[[], _T]], at_once: int, *,
                       name: str = "incus-images-reads") -> dict[str, Future[_T]]:
    """Start every work, at most ``at_once`` running at any time, in ``works``' order;
    each one's future, by key (its result or its error once it ran).

    ``at_once`` daemon threads take the works in turn; nothing waits for them but a
    caller asking a future for its result.
    """
    futures: dict[str, Future[_T]] = {key: Future() for key in works}
    queue = list(works.items())
    lock = threading.Lock()

    def take() -> tuple[str, Callable[[], _T]] | None:
        with lock:
            return queue.pop(0) if queue else None

    def run() -> None:
        while (item := take()) is not None:
            key, work = item
            future = futures[key]
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(work())
            except BaseException as exc:  # handed to the caller
                future.set_exception(exc)

    for _ in range(max(1, min(at_once, len(works)))):
        start_thread(threading.Thread(target=run, name=name, daemon=True))
    return futures
