"""``python -m reconciler`` and the ``incus-images`` script.

SIGINT and SIGTERM are caught from the first lines on, before anything heavy is
imported (click, pydantic and requests take a while): a signal during start-up
ends with the same one line and exit status as later (130, 143), never a
traceback.  Only ``signal`` (and ``atexit``, ``os``: already loaded) is imported
before the handlers are in; the full handlers (:mod:`reconciler.interrupts`)
replace these once imported.

The process ends without tearing the interpreter down (:func:`_end_at_once`).
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
from types import FrameType
from typing import Any


class _StartupInterrupt(BaseException):
    """A signal that arrived before :mod:`reconciler.interrupts` was imported."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_early: list[int] = []
"""The signals the start-up handler took (see :func:`entry`)."""


def _during_startup(signum: int, frame: FrameType | None) -> None:
    _early.append(signum)
    raise _StartupInterrupt(signum)


def _catch_early() -> None:
    """Install the start-up handlers (a signal the process was started ignoring stays so),
    and the start-up's hook for exceptions Python cannot raise."""
    sys.unraisablehook = _unraisable_during_startup
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, _during_startup)


def _unraisable_during_startup(unraisable: Any) -> None:
    """An interrupt raised where Python cannot raise it (a weakref callback) is not
    printed as a traceback: :func:`entry` stops on the signal all the same.  Anything
    else is reported as Python reports it."""
    errors = sys.modules.get("reconciler.errors")
    ours = (_StartupInterrupt, *((errors.Interrupted,) if errors is not None else ()))
    if not isinstance(unraisable.exc_value, ours):
        sys.__unraisablehook__(unraisable)


def entry() -> int:
    """Catch signals, import the CLI, run it; return the exit status."""
    try:
        _catch_early()  # inside the try: a signal right after the first handler is caught
        from reconciler import interrupts

        interrupts.install()
        from reconciler.cli import main

        # A handler's exception is lost when the signal lands while Python runs a weakref
        # callback (importlib's module locks have one): the signal is still stopped on.
        missed = _early[0] if _early else interrupts.fired()
        if missed is not None:
            return _stopped(missed)
        return main()
    except (_StartupInterrupt, KeyboardInterrupt) as exc:  # during the imports above
        signum = exc.signum if isinstance(exc, _StartupInterrupt) else signal.SIGINT
        return _stopped(signum)
    except BaseException as exc:
        from reconciler.errors import Interrupted

        if not isinstance(exc, Interrupted):
            raise
        sys.stderr.write(f"incus-images: {exc}\n")
        return exc.exit_code
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # exiting: nothing more to stop
            if signal.getsignal(sig) is not signal.SIG_IGN:
                signal.signal(sig, signal.SIG_IGN)


def _stopped(signum: int) -> int:
    name = signal.Signals(signum).name
    sys.stderr.write(f"incus-images: interrupted ({name})\n")
    return 128 + signum


def _end_at_once(status: int) -> None:
    """End the process as the interpreter would, without tearing it down: freeing every
    module and object takes 0.1-0.2 s after a plan of a public-size index, for nothing.

    First what exit does: wait for the threads (``threading._shutdown``: the worker
    pools' too), then run every exit handler, last registered first
    (``atexit._run_exitfuncs``: leases left, private files, and any a wrapper such as
    coverage registered before this script ran); then flush the output and
    ``os._exit``.  Output that cannot be flushed (its reader went away) ends a
    successful run with status 1, as ``exit_status`` does.  Where either function is
    missing (another Python), this returns and the process ends the usual way."""
    import threading

    shutdown = getattr(threading, "_shutdown", None)
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if shutdown is None or run_exit_handlers is None:
        return
    shutdown()
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            status = status or 1
    os._exit(status)


def script() -> None:
    """The ``incus-images`` console script."""
    status = entry()
    _end_at_once(status)
    raise SystemExit(status)


if __name__ == "__main__":
    script()
