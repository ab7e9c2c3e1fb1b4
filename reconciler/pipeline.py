"""The pipeline's stages, run against stores and a reader that the caller opened.

Data flows one way: resolve remotes, observe stores, plan (pure, at the clock's
"now"), apply.  This module builds no adapter: :class:`reconciler.services.Services`
says how to reach the world, and :func:`opened_stores` opens the stores of one
command.

Invariants:

* One connection per target per command: every stage of a command (its leases,
  the observation for the plan or for a saved plan's freshness check, and apply)
  uses the store :func:`opened_stores` opened for that target, which is
  connected at most once and closed when the command's block ends.
* Stores are connected in the calling (main) thread, never in a worker: the
  stages pick the stores they need out of the mapping before any thread starts
  (the run's timeouts are a context variable that threads do not inherit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Literal

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
from reconciler.services import Services


class Stores(Mapping[str, ImageStore]):
    """The image stores of one config's targets, by target name, for one command.

    A target's store is connected on first use, once; :func:`opened_stores`
    closes every store connected when its block ends, and a closed ``Stores``
    connects nothing more.  Iterating lists the declared targets, and ``in``
    checks one, without connecting.
    """

    def __init__(self, config: Config, services: Services, *,
                 operation_timeout: float | None = None) -> None:
        self._config = config
        self._services = services
        self._stack = ExitStack()
        self._operation_timeout = operation_timeout
        self._open: dict[str, ImageStore] = {}
        self._closed = False

    def __getitem__(self, name: str) -> ImageStore:
        store = self._open.get(name)
        if store is None:
            if self._closed:
                raise RuntimeError("the stores of this command are closed")
            spec = self._config.targets[name]  # KeyError: not a declared target
            store = self._stack.enter_context(
                self._services.connect(spec, operation_timeout=self._operation_timeout))
            self._open[name] = store
        return store

    def __iter__(self) -> Iterator[str]:
        return iter(self._config.targets)

    def __len__(self) -> int:
        return len(self._config.targets)

    def connect(self, target: TargetSpec) -> ImageStore:
        """The store of ``target`` (a declared target): for stages that take a connect."""
        return self[target.name]

    def __contains__(self, name: object) -> bool:
        return name in self._config.targets  # (Mapping's default would connect)

    def close(self) -> None:
        """Close every store connected (the last connected first); none is used afterwards."""
        self._closed = True
        self._open.clear()
        self._stack.close()


@contextmanager
def opened_stores(config: Config, services: Services, *,
                  operation_timeout: float | None = None) -> Iterator[Stores]:
    """The stores of ``config``'s targets, each connected at most once, all closed at the end.

    ``operation_timeout`` (seconds, None: the adapter's default) bounds the wait for
    each daemon operation of every store opened.
    """
    stores = Stores(config, services, operation_timeout=operation_timeout)
    try:
        yield stores
    finally:
        stores.close()


def pick(stores: Mapping[str, ImageStore], names: Sequence[str]) -> dict[str, ImageStore]:
    """The stores of ``names`` (connected now, in this thread, if not yet)."""
    return {name: stores[name] for name in names}


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
    stores: Mapping[str, ImageStore],
    reader: RemoteReader,
    *,
    targets: Sequence[str] | None,
    allow_empty: bool,
    now: datetime,
    locks: Locks | Literal["beside"] | None = "beside",
) -> Plan:
    """Plan ``config`` against the live stores (remotes read once each), at ``now``.

    ``locks``: ``"beside"`` reads the lock file beside ``config.path`` (none there:
    no locks); ``diff`` passes the locks of the revision it plans.
    """
    if isinstance(locks, str):
        from reconciler.lockfile import read_locks

        locks = read_locks(config.path)
    names = select_targets(config, targets)
    states = observe(pick(stores, names))
    siblings = same_daemon_targets(config, names)
    if siblings:  # --target: the targets left out may still share a store with one chosen
        others = observe(pick(stores, siblings))
        check_distinct_stores([*states.values(), *others.values()], involving=names)
    catalogs = fetch_catalogs(config, names, reader)
    plan = _plan(config, catalogs, states, now=now, allow_empty=allow_empty, locks=locks)
    return saveable(config, plan.model_copy(update={"created_at": now}), states)


def apply_plan(config: Config, plan: Plan, stores: Mapping[str, ImageStore],
               reader: RemoteReader, *,
               reporter: Reporter) -> ApplyResult:
    """Apply ``plan`` through ``stores``; connection details and credentials come from
    ``config`` only (never from the plan)."""
    names = sorted({c.target for c in plan.changes})
    select_targets(config, names)
    return _apply(plan, stores=pick(stores, names), reader=reader, remotes=config.remotes,
                  reporter=reporter)


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
    stores: Mapping[str, ImageStore],
    *,
    timeout: float,
    ttl: float,
    on_wait: Callable[[str, LeaseRecord], None],
    on_note: Callable[[str], None],
) -> Leases:
    """The leases an apply on ``targets`` holds (one per daemon URL), not yet taken.

    Use it as a context manager around planning and applying, inside the block of
    ``stores`` (the leases, and their renewal thread, use those stores).
    """
    by_url: dict[str, str] = {}
    for name in sorted(set(targets)):
        by_url.setdefault(config.targets[name].url.rstrip("/"), name)
    held = [(name, stores[name]) for _, name in sorted(by_url.items())]
    return Leases(held, owner=config.owner, ttl=ttl, timeout=timeout, on_wait=on_wait,
                  on_note=on_note)


def check_fresh(config: Config, plan: Plan, name: str, stores: Mapping[str, ImageStore]
                ) -> None:
    """Observe every target ``plan`` changes again; raise ``StalePlan`` if it moved.

    ``plan`` has passed ``planfile.check_matches`` against ``config``; ``name``
    words the message (the saved plan's file name).
    """
    from reconciler import planfile

    planfile.check_fresh(plan, observe(pick(stores, planfile.touched(plan))), name)
