"""The composition root: resolve remotes, observe stores, plan, apply.

The only module that builds adapters.  ``reader`` and ``connect`` can be passed
in (tests pass in-memory ones); by default they are the HTTP remote reader and
the Incus REST adapter, built with the run's timeouts (``reconciler.timeouts``,
set by the CLI's ``--connect-timeout``/``--read-timeout``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Literal

from reconciler import timeouts
from reconciler.apply.executor import apply_plan as _apply
from reconciler.apply.lease import LeaseRecord, Leases
from reconciler.core.planner import check_distinct_stores
from reconciler.core.planner import make_plan as _plan
from reconciler.interrupts import threads_without_signals
from reconciler.model.config import Config, TargetSpec
from reconciler.model.lock import Locks
from reconciler.model.observed import TargetState
from reconciler.model.plan import Plan
from reconciler.model.remote import RemoteCatalog
from reconciler.model.result import ApplyResult
from reconciler.ports import ImageStore, RemoteReader
from reconciler.render.progress import Reporter

Connect = Callable[[TargetSpec], ImageStore]


def default_reader() -> RemoteReader:
    """The HTTP remote reader, with this run's timeouts (``reconciler.timeouts``)."""
    from reconciler.adapters.remotes.reader import HttpRemoteReader

    limits = timeouts.current()
    return HttpRemoteReader(connect_timeout=limits.connect, read_timeout=limits.read)


def default_connect(target: TargetSpec, *, operation_timeout: float | None = None
                    ) -> ImageStore:
    """The Incus REST adapter for ``target``, with this run's timeouts;
    ``operation_timeout`` (seconds) overrides its default."""
    from reconciler.adapters.incus import OPERATION_TIMEOUT, connect

    return connect(target, timeouts.current(),
                   operation_timeout=operation_timeout or OPERATION_TIMEOUT)


def select_targets(config: Config, names: Sequence[str] | None) -> list[str]:
    """The targets to work on, sorted: all declared, or the named ones (each declared)."""
    return sorted(config.check_targets(names or ()) or config.targets)


def same_daemon_targets(config: Config, names: Sequence[str]) -> list[str]:
    """The declared targets not in ``names`` whose URL is one of theirs (the same daemon)."""
    urls = {config.targets[n].url.rstrip("/") for n in names}
    return sorted(n for n, t in config.targets.items()
                  if n not in names and t.url.rstrip("/") in urls)


def fetch_catalogs(config: Config, targets: Sequence[str], reader: RemoteReader
                   ) -> dict[str, RemoteCatalog]:
    """One catalog per remote that an entry of ``targets`` uses (one fetch per remote)."""
    used = sorted({e.remote for e in config.entries if e.target in targets})
    return {name: reader.fetch_catalog(config.remotes[name]) for name in used}


def observe(stores: Mapping[str, ImageStore]) -> dict[str, TargetState]:
    """Every target observed concurrently."""
    if not stores:
        return {}
    with ThreadPoolExecutor(max_workers=min(4, len(stores))) as pool:
        with threads_without_signals():  # SIGINT/SIGTERM go to the main thread
            futures = {name: pool.submit(store.observe) for name, store in stores.items()}
        return {name: f.result() for name, f in futures.items()}


def make_plan(
    config: Config,
    *,
    targets: Sequence[str] | None,
    allow_empty: bool,
    environ: Mapping[str, str],
    now: datetime,
    reader: RemoteReader | None = None,
    connect: Connect | None = None,
    locks: Locks | Literal["beside"] | None = "beside",
) -> Plan:
    """Plan ``config`` against the live stores (remotes read once each).

    ``locks``: ``"beside"`` reads the lock file beside ``config.path`` (none there:
    no locks); ``diff`` passes the locks of the revision it plans.
    """
    if isinstance(locks, str):
        from reconciler.lockfile import read_locks

        locks = read_locks(config.path)
    names = select_targets(config, targets)
    rdr = reader or default_reader()
    conn = connect or default_connect
    stores = {n: conn(config.targets[n]) for n in names}
    states = observe(stores)
    siblings = same_daemon_targets(config, names)
    if siblings:  # --target: the targets left out may still share a store with one chosen
        others = observe({n: conn(config.targets[n]) for n in siblings})
        check_distinct_stores([*states.values(), *others.values()], involving=names)
    catalogs = fetch_catalogs(config, names, rdr)
    plan = _plan(config, catalogs, states, now=now, allow_empty=allow_empty, locks=locks)
    return saveable(config, plan.model_copy(update={"created_at": now}), states)


def apply_plan(
    config: Config,
    plan: Plan,
    *,
    environ: Mapping[str, str],
    reporter: Reporter,
    reader: RemoteReader | None = None,
    connect: Connect | None = None,
    operation_timeout: float | None = None,
) -> ApplyResult:
    """Apply ``plan``; connection details and credentials come from ``config`` only.

    ``operation_timeout`` bounds the wait for each daemon operation (default adapter only).
    """
    names = sorted({c.target for c in plan.changes})
    select_targets(config, names)
    conn = connect or (lambda t: default_connect(t, operation_timeout=operation_timeout))
    stores = {n: conn(config.targets[n]) for n in names}
    return _apply(plan, stores=stores, reader=reader or default_reader(),
                  remotes=config.remotes, reporter=reporter)


def saveable(config: Config, plan: Plan, states: Mapping[str, TargetState]) -> Plan:
    """``plan`` made self-checking, so it can be saved and applied later.

    It records the file's digest, the file's git provenance (stamped on every
    record apply writes), what it relies on in each target it changes, and is
    sealed with its own digest (``reconciler.planfile``).
    """
    from reconciler import planfile, provenance

    observed = {t: planfile.select(states[t], plan, config) for t in planfile.touched(plan)}
    stamped = provenance.stamp(plan, provenance.discover(Path(config.path)))
    return planfile.seal(stamped.model_copy(
        update={"desired_digest": config.digest, "observed": observed}))


def leases(
    config: Config,
    targets: Sequence[str],
    *,
    timeout: float,
    ttl: float,
    on_wait: Callable[[str, LeaseRecord], None],
    on_note: Callable[[str], None],
    connect: Connect | None = None,
) -> Leases:
    """The leases an apply on ``targets`` holds (one per daemon URL), not yet taken.

    Use it as a context manager around planning and applying.  Each lease has a
    connection of its own, used only by the lease (and its renewal thread).
    """
    conn = connect or default_connect
    by_url: dict[str, str] = {}
    for name in sorted(set(targets)):
        by_url.setdefault(config.targets[name].url.rstrip("/"), name)
    stores = [(name, conn(config.targets[name])) for _, name in sorted(by_url.items())]
    return Leases(stores, owner=config.owner, ttl=ttl, timeout=timeout, on_wait=on_wait,
                  on_note=on_note)


def check_fresh(config: Config, plan: Plan, name: str, *, connect: Connect | None = None
                ) -> None:
    """Observe every target ``plan`` changes again; raise ``StalePlan`` if it moved.

    ``plan`` has passed ``planfile.check_matches`` against ``config``; ``name``
    words the message (the saved plan's file name).
    """
    from reconciler import planfile

    conn = connect or default_connect
    stores = {t: conn(config.targets[t]) for t in planfile.touched(plan)}
    planfile.check_fresh(plan, observe(stores), name)
