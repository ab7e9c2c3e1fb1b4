"""SIGINT and SIGTERM: turned into one :class:`Interrupted` in the main thread.

Invariants:

* The entry point (``python -m reconciler``, the ``incus-images`` script) catches
  both signals from its first line (see :mod:`reconciler.__main__`) and calls
  :func:`install` before it imports anything heavy, so a signal during start-up
  is handled too; :func:`handled` installs them for the duration of one CLI run
  called in-process and puts the previous ones back after it.  Outside the main
  thread nothing is installed: Python only lets the main thread do so.  A signal
  the process was started with ignored stays ignored.
* The first signal raises ``Interrupted(signum)`` in the main thread, wherever it
  is (a socket read, a lease wait, waiting for apply's workers).  Every later
  signal of the same run is ignored: the way out (finishing the change under
  way, releasing the leases) must not itself be cut short.  SIGKILL remains the
  way to stop at once; a killed run's lease lapses (sooner on the same machine).
* Inside :func:`deferred` (a lease release) a first signal is held back and
  raised when the block ends, so a release is never cut in half.
* A signal that lands while Python runs a weakref callback or a ``__del__`` raises
  where Python only reports the exception (``sys.unraisablehook``).  While the
  handlers are installed, such an ``Interrupted`` is not printed but kept as
  *lost*: :func:`check` raises it in the main thread at the next check point
  (before apply's first change, in its waits, in a lease wait), and
  :func:`lost` tells worker threads to start nothing more.
* Threads the tool starts run with SIGINT and SIGTERM blocked
  (:func:`threads_without_signals`): the kernel then delivers them to the main
  thread, whose blocking call they interrupt.  A signal delivered to another
  thread would only be noticed when the main thread next woke up.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from reconciler.errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _State:
    def __init__(self) -> None:
        self.fired: int | None = None
        self.deferring = 0
        self.held: int | None = None
        self.lost: int | None = None
        """A signal whose ``Interrupted`` Python dropped, not yet raised again."""


_state = _State()


def _handler(signum: int, frame: FrameType | None) -> None:
    if _state.fired is not None:
        return  # one interrupt per run: let the way out finish
    _state.fired = signum
    if _state.deferring:
        _state.held = signum
        return
    raise Interrupted(signum)


def install() -> bool:
    """Install the handlers for good (the process's entry point).  False when they
    already were, or outside the main thread.  A signal the process was started
    with ignored (``nohup``, a background job) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        return False
    if any(signal.getsignal(sig) is _handler for sig in SIGNALS):
        return False
    _state.fired, _state.held, _state.deferring, _state.lost = None, None, 0, None
    for sig in SIGNALS:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, _handler)
    sys.unraisablehook = _unraisable
    return True


def _unraisable(unraisable: Any) -> None:
    """Keep an ``Interrupted`` Python could not raise (see the module's invariants);
    report anything else as Python does."""
    exc = unraisable.exc_value
    if isinstance(exc, Interrupted):
        _state.lost = exc.signum
        return
    sys.__unraisablehook__(unraisable)


def lost() -> int | None:
    """The signal whose ``Interrupted`` Python dropped and :func:`check` has not raised
    yet, if any: a worker that sees one starts nothing more."""
    return _state.lost


def check() -> None:
    """Raise, once, the ``Interrupted`` Python dropped: a check point of the main thread
    (elsewhere this does nothing: an interrupt is the main thread's to raise)."""
    if threading.current_thread() is not threading.main_thread():
        return
    signum, _state.lost = _state.lost, None
    if signum is not None:
        raise Interrupted(signum)


def fired() -> int | None:
    """The signal this run's handler took, if any (None: none yet)."""
    return _state.fired


@contextmanager
def handled() -> Iterator[None]:
    """Turn SIGINT/SIGTERM into :class:`Interrupted` while the block runs; then put the
    previous handlers back (unless they were already ours: see :func:`install`)."""
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    hook = sys.unraisablehook
    if not install():
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sys.unraisablehook = hook
        _state.lost = None


@contextmanager
def deferred() -> Iterator[None]:
    """Hold back a signal that arrives while the block runs; raise it when the block ends
    (from the block's own exception, if it raised one that is not already an interrupt)."""
    _state.deferring += 1
    try:
        yield
    except BaseException as exc:
        signum = _leave_deferral()
        if signum is not None and not isinstance(exc, Interrupted):
            raise Interrupted(signum) from exc
        raise
    signum = _leave_deferral()
    if signum is not None:
        raise Interrupted(signum)


def _leave_deferral() -> int | None:
    """Leave one level of :func:`deferred`; the held signal when it was the outermost."""
    _state.deferring -= 1
    if _state.deferring or _state.held is None:
        return None
    signum, _state.held = _state.held, None
    return signum


@contextmanager
def threads_without_signals() -> Iterator[None]:
    """Block SIGINT and SIGTERM in this thread while the block runs.

    Threads started inside the block inherit the mask and keep it, so signals
    go to the main thread.  A signal arriving meanwhile stays pending and is
    delivered when the block ends.
    """
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, set(SIGNALS))
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def start_thread(thread: threading.Thread) -> None:
    """Start ``thread`` with SIGINT and SIGTERM blocked in it (see module doc)."""
    with threads_without_signals():
        thread.start()
