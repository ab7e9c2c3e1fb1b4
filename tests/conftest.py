"""Shared fixtures: real ``incusd`` daemons in throw-away directories.

Policy when ``/usr/libexec/incus/incusd`` is missing: with ``CI=true`` a test that
needs it FAILS (CI must install it with ``scripts/install-incus``); elsewhere it is
skipped with the command that installs it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator

import pytest

from tests.support.incusd import INCUSD, Incusd

# --- other fixture modules -------------------------------------------------------------
pytest_plugins = ["tests.support.fixtures", "tests.support.e2e", "tests.support.cluster"]

IncusdFactory = Callable[..., Incusd]


def pytest_configure(config: pytest.Config) -> None:
    """Turn SIGTERM (a CI timeout, ``timeout(1)``) into an interrupt, so fixtures still
    stop the daemons this run started instead of leaving them orphaned.

    A run started with SIGINT ignored (a background job of a shell without job control,
    ``nohup``) would hand that to every process it starts, and the tool rightly keeps a
    signal it was started ignoring: the tests that send SIGINT would test nothing.  The
    usual handler is put back, so the processes started here get SIGINT's default.
    """

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def require_incusd() -> None:
    """Fail (on CI) or skip (elsewhere) when incusd is not installed."""
    if INCUSD.exists():
        return
    if os.environ.get("CI") == "true":
        pytest.fail("incusd not found: run scripts/install-incus")
    pytest.skip("incusd not found; install it with: sudo scripts/install-incus "
                "(Debian 12, bookworm-backports)")


@pytest.fixture
def incusd_factory() -> Iterator[IncusdFactory]:
    """Start as many daemons as a test needs: ``incusd_factory(env=None)``; all stopped after."""
    require_incusd()
    started: list[Incusd] = []

    def start(env: dict[str, str] | None = None) -> Incusd:
        daemon = Incusd(env=env)
        started.append(daemon)
        daemon.start()
        return daemon

    try:
        yield start
    finally:
        for daemon in reversed(started):
            daemon.stop()


@pytest.fixture
def incusd(incusd_factory: IncusdFactory) -> Incusd:
    """A fresh daemon for this test (about 0.3 s to start), stopped and removed after it."""
    return incusd_factory()
