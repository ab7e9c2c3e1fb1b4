"""The pipeline's stages, run against stores and a reader that the caller opened; and
the flows of ``lock``, ``status`` and ``diff`` (adapters read, ``reconciler.core`` decides).

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
* At most ``parallelism`` targets are observed (and applied) at once, and results
  are in target order whatever finished first.  For ``plan`` and ``apply``, a target
  that cannot be observed fails alone (:func:`observe_each`): the plan leaves it out
  and names it (``Plan.targets``); only when no target could be observed does
  planning raise.
* ``make_plan`` reads the remotes in one background thread while it observes the
  stores; what fails is reported in the order of the sequential flow: a store's
  error, then a conflict between stores, then the first remote (by name) that failed.
* Observations and remote reads run in :mod:`reconciler.background`'s daemon threads:
  an interrupt stops the command at once, without waiting for a daemon's image list
  (its leases are released on the way out), and nothing the reads would return is used.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import Future, wait
from contextlib import ExitStack, contextmanager
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Literal, TypeVar

from reconciler.apply.executor import Halted
from reconciler.apply.executor import apply_plan as _apply
from reconciler.apply.lease import LeaseRecord, Leases
from reconciler.background import each_in_background, in_background
from reconciler.core.copies import managed_fingerprints, unchecked_notes
from reconciler.core.diff import DiffReport, EntryDiff
from reconciler.core.inventory import with_inventories
from reconciler.core.lock import LockOutcome
from reconciler.core.planner import check_distinct_stores
from reconciler.core.planner import make_plan as _plan
from reconciler.core.status import StatusRun
from reconciler.errors import IncusImagesError, RemoteError, TargetsFailed, ValidationFailed
from reconciler.model.config import Config, TargetSpec
from reconciler.model.lock import LockFile, Locks
from reconciler.model.observed import Provenance, TargetState
from reconciler.model.plan import Plan, TargetReach
from reconciler.model.remote import RemoteCatalog
from reconciler.model.result import ApplyResult
from reconciler.ports import DEFAULT_PARALLELISM, ImageStore, RemoteReader
from reconciler.render.progress import Reporter
from reconciler.services import Services

_T = TypeVar("_T")

Connect = Callable[[TargetSpec], ImageStore]
"""Opens a target's store (``Stores.connect`` of :func:`opened_stores`)."""


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
    """The declared targets not in ``names`` that share an address with one of them (the
    same daemon, or the same cluster through ``urls:``)."""
    urls = {a.rstrip("/") for n in names for a in config.targets[n].addresses}
    return sorted(n for n, t in config.targets.items()
                  if n not in names and any(a.rstrip("/") in urls for a in t.addresses))


def fetch_catalogs(config: Config, targets: Sequence[str], reader: RemoteReader
                   ) -> dict[str, RemoteCatalog]:
    """One catalog per remote that an entry of ``targets`` uses (one fetch per remote)."""
    used = sorted({e.remote for e in config.entries if e.target in targets})
    return {name: reader.fetch_catalog(config.remotes[name]) for name in used}


SLOW_SECONDS = 10.0
"""After this long observing, ``on_slow`` hears which targets are still being read."""
SLOW_EVERY = 30.0
"""...and again after each further such span."""

SlowNote = Callable[[Sequence[str], float], None]
"""Told the targets still being read, in order, and the seconds waited so far."""


def observe(stores: Mapping[str, ImageStore], parallelism: int = DEFAULT_PARALLELISM, *,
            verify_for: str | None = None, on_slow: SlowNote | None = None
            ) -> dict[str, TargetState]:
    """Every target observed, ``parallelism`` at a time, with its owners' records read
    (:func:`~reconciler.core.inventory.with_inventories`); the first target (in
    ``stores``' order) that fails raises.  ``verify_for``, ``on_slow``: see
    :func:`observe_each`."""
    states, failures = observe_each(stores, parallelism, verify_for=verify_for,
                                     on_slow=on_slow)
    for exc in failures.values():
        raise exc
    return states


def observe_each(stores: Mapping[str, ImageStore], parallelism: int = DEFAULT_PARALLELISM, *,
                 verify_for: str | None = None, on_slow: SlowNote | None = None
                 ) -> tuple[dict[str, TargetState], dict[str, IncusImagesError]]:
    """Every target observed, at most ``parallelism`` at once: the states of those that
    answered and the error of each that did not, both in ``stores``' order.

    One target's failure (unreachable, no quorum, untrusted) is that target's alone;
    anything that is not an :class:`IncusImagesError` (a bug, an interrupt) propagates.
    ``verify_for`` (``--verify``): an owner whose managed images are then checked through
    every member (:meth:`ImageStore.verify_copies`, the result in
    ``TargetState.verification``); None sends no per-image request.  ``on_slow``
    hears of the targets still being read after :data:`SLOW_SECONDS`, then every
    :data:`SLOW_EVERY` (a daemon sends its image list only once it is whole: tens of
    seconds for thousands of images).
    """
    if not stores:
        return {}, {}
    futures = each_in_background(
        {name: partial(_observe_one, store, verify_for) for name, store in stores.items()},
        parallelism, name="incus-images-observe")
    with _abandoned_if_left(futures, stores):
        if on_slow is not None:
            _tell_while_slow(futures, on_slow)
        states: dict[str, TargetState] = {}
        failures: dict[str, IncusImagesError] = {}
        for name, future in futures.items():
            try:
                states[name] = future.result()
            except IncusImagesError as exc:
                failures[name] = exc
    return states, failures


@contextmanager
def _abandoned_if_left(futures: Mapping[str, Future[_T]], stores: Mapping[str, ImageStore]
                       ) -> Iterator[None]:
    """Whatever leaves the block early (an interrupt, a bug) abandons the reads still
    under way (:meth:`ImageStore.abandon`), so that their daemons stop listing and the
    leases can be released at once."""
    try:
        yield
    except BaseException:
        for name, future in futures.items():
            if not future.done():
                future.cancel()
                stores[name].abandon()
        raise


def _tell_while_slow(futures: Mapping[str, Future[TargetState]], on_slow: SlowNote) -> None:
    """Wait for ``futures``, telling ``on_slow`` of those still running now and then."""
    waited, span = 0.0, SLOW_SECONDS
    while pending := wait(futures.values(), timeout=span).not_done:
        waited += span
        on_slow([name for name, f in futures.items() if f in pending], waited)
        span = SLOW_EVERY


def _observe_one(store: ImageStore, verify_for: str | None) -> TargetState:
    state = with_inventories(store.observe())
    if verify_for is None:
        return state
    found = store.verify_copies(managed_fingerprints(state, verify_for), state)
    return state.model_copy(update={"verification": found})


def pick_each(stores: Mapping[str, ImageStore], names: Sequence[str]
              ) -> tuple[dict[str, ImageStore], dict[str, IncusImagesError]]:
    """Like :func:`pick`, but a target whose store cannot be opened is set aside with why."""
    picked: dict[str, ImageStore] = {}
    failures: dict[str, IncusImagesError] = {}
    for name in names:
        try:
            picked[name] = stores[name]
        except IncusImagesError as exc:
            failures[name] = exc
    return picked, failures


def make_plan(
    config: Config,
    stores: Mapping[str, ImageStore],
    reader: RemoteReader,
    *,
    targets: Sequence[str] | None,
    allow_empty: bool,
    now: datetime,
    locks: Locks | Literal["beside"] | None = "beside",
    verify: bool = False,
    parallelism: int = DEFAULT_PARALLELISM,
    failed: Mapping[str, IncusImagesError] | None = None,
    seen: dict[str, TargetState] | None = None,
    on_slow: SlowNote | None = None,
) -> Plan:
    """Plan ``config`` against the live stores (remotes read once each), at ``now``.

    ``seen``: filled with the observation of each target planned, so that ``apply``
    carries the plan out on that observation instead of reading each store again.

    ``locks``: ``"beside"`` reads the lock file beside ``config.path`` (none there:
    no locks); ``diff`` passes the locks of the revision it plans.  At most
    ``parallelism`` targets are observed at once.  A target that cannot be observed
    (or is in ``failed``: its lease could not be taken) is left out of the plan and
    named in its ``targets`` with why (:attr:`Plan.failed_targets`); the others are
    planned all the same.  ``verify``: check this owner's images through every
    member first (``--verify``).  ``on_slow``: see :func:`observe_each`.
    """
    if isinstance(locks, str):
        from reconciler.adapters.lockfile import read_locks

        locks = read_locks(config.path)
    names = select_targets(config, targets)
    catalogs_fetched = in_background(lambda: fetch_catalogs(config, names, reader))
    provenance = in_background(lambda: _discover(config))  # git runs while stores answer
    picked, failures = pick_each(stores, [n for n in names if n not in (failed or {})])
    states, unobserved = observe_each(picked, parallelism,
                                      verify_for=config.owner if verify else None,
                                      on_slow=on_slow)
    failures = {**dict(failed or {}), **failures, **unobserved}
    if failures and not states:  # nothing to plan: the errors are the whole answer
        errors = [failures[n] for n in sorted(failures)]
        if len(errors) == 1:
            raise errors[0]
        raise TargetsFailed([str(e) for e in errors])
    siblings = same_daemon_targets(config, names)
    if siblings:  # --target: the targets left out may still share a store with one chosen
        reachable_siblings = pick_each(stores, siblings)[0]
        others = observe_each(reachable_siblings, parallelism)[0]  # the unreachable: unknown
        check_distinct_stores([*states.values(), *others.values()], involving=names)
    catalogs = catalogs_fetched()  # its error, if any, comes after the stores' (as before)
    plan = _plan(config, catalogs, states, now=now, allow_empty=allow_empty, locks=locks)
    if seen is not None:
        seen.update(states)
    reach = reached(config, states, {n: str(e) for n, e in failures.items()})
    return saveable(config, plan.model_copy(update={"created_at": now, "targets": reach}),
                    states, provenance())


def _discover(config: Config) -> Provenance | None:
    from reconciler.adapters.git import discover

    return discover(Path(config.path))


def reached(config: Config, states: Mapping[str, TargetState], failures: Mapping[str, str]
            ) -> dict[str, TargetReach] | None:
    """The plan's ``targets``: the address used for each target declared with ``urls:``,
    and why each failed target could not be observed (None when there is neither)."""
    out = {name: TargetReach(url=state.url, passed_over=dict(state.passed_over) or None)
           for name, state in states.items() if config.targets[name].urls}
    out.update({name: TargetReach(error=why) for name, why in failures.items()})
    return dict(sorted(out.items())) or None


def apply_plan(config: Config, plan: Plan, stores: Mapping[str, ImageStore],
               reader: RemoteReader, *,
               reporter: Reporter, parallelism: int = DEFAULT_PARALLELISM,
               allow_degraded: bool = False,
               seen: Mapping[str, TargetState] | None = None,
               halted: Halted | None = None) -> ApplyResult:
    """Apply ``plan`` through ``stores``, at most ``parallelism`` targets at once;
    connection details and credentials come from ``config`` only (never from the plan).
    The result names the targets the plan could not observe (``failed_targets``).
    ``allow_degraded``: see :func:`reconciler.apply.executor.apply_plan`.  ``seen``: the
    targets' observations the plan was made or checked on (under the same leases);
    a target without one is observed afresh.  ``halted``: why a target must start no
    more changes (:func:`lease_lost`)."""
    names = sorted({c.target for c in plan.changes})
    select_targets(config, names)
    result = _apply(plan, stores=pick(stores, names), reader=reader, remotes=config.remotes,
                    reporter=reporter, parallelism=parallelism, allow_degraded=allow_degraded,
                    seen=seen, halted=halted)
    return result.model_copy(update={"failed_targets": plan.failed_targets})


def observe_first(stores: Mapping[str, ImageStore], targets: Sequence[str],
                  parallelism: int = DEFAULT_PARALLELISM) -> dict[str, IncusImagesError]:
    """Read ``targets`` (:meth:`ImageStore.check`) before anything is written to them
    (their leases come next); the targets that could not be read, with why.

    A target that cannot be read (unreachable, no quorum: ``NoQuorum``) must get no
    request that writes: on Incus 6.0.4/6.0.5 a failed ``PATCH /1.0`` on a cluster
    erases the member's settings.  The check is the part of an observation a write
    depends on, in a constant number of requests; the plan observes the targets
    whole once their leases are held.
    """
    picked, failures = pick_each(stores, sorted(set(targets)))
    if not picked:
        return failures
    futures = each_in_background({name: store.check for name, store in picked.items()},
                                 parallelism, name="incus-images-check")
    with _abandoned_if_left(futures, picked):
        for name, future in futures.items():
            try:
                future.result()
            except IncusImagesError as exc:
                failures[name] = exc
    return failures


def saveable(config: Config, plan: Plan, states: Mapping[str, TargetState],
             provenance: Provenance | Literal["discover"] | None = "discover") -> Plan:
    """``plan`` made self-checking, so it can be saved and applied later.

    It records the file's digest, the file's git provenance (stamped on every
    record apply writes; ``"discover"``: read from git now), what it relies on in
    each target it changes, and is sealed with its own digest
    (``reconciler.core.seal``).
    """
    from reconciler.core.freshness import select, touched
    from reconciler.core.provenance import stamp
    from reconciler.core.seal import seal

    if provenance == "discover":
        provenance = _discover(config)
    observed = {t: select(states[t], plan, config) for t in touched(plan)}
    stamped = stamp(plan, provenance)
    return seal(stamped.model_copy(
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
    set_aside_failed: bool = False,
) -> Leases:
    """The leases an apply on ``targets`` holds (one per daemon URL), not yet taken.

    Use it as a context manager around planning and applying, inside the block of
    ``stores`` (the leases, and their renewal thread, use those stores).  With
    ``set_aside_failed`` a daemon that fails is set aside (:func:`not_leased`).
    """
    held = [(name, stores[name]) for _, name in sorted(_lease_holders(config, targets).items())]
    return Leases(held, owner=config.owner, ttl=ttl, timeout=timeout, on_wait=on_wait,
                  on_note=on_note, set_aside_failed=set_aside_failed)


def _daemon(config: Config, name: str) -> str:
    """The daemon target ``name`` is on, as the leases key it (one lease per daemon)."""
    return config.targets[name].url.rstrip("/")


def _lease_holders(config: Config, targets: Sequence[str]) -> dict[str, str]:
    """Daemon URL -> the target whose store takes its lease (the first by name)."""
    by_url: dict[str, str] = {}
    for name in sorted(set(targets)):
        by_url.setdefault(_daemon(config, name), name)
    return by_url


def not_leased(config: Config, targets: Sequence[str], held: Leases
               ) -> dict[str, IncusImagesError]:
    """The targets among ``targets`` whose daemon's lease could not be taken (it failed),
    with the error: every target on that daemon, not only the one that took it."""
    holders = _lease_holders(config, targets)
    out: dict[str, IncusImagesError] = {}
    for name in sorted(set(targets)):
        holder = holders[_daemon(config, name)]
        if holder in held.failed:
            out[name] = held.failed[holder]
    return out


def lease_lost(config: Config, targets: Sequence[str], held: Leases) -> Halted:
    """For each of ``targets``: why it must start no more changes once the lease on its
    daemon was taken over (another apply holds it now), else None."""
    holders = _lease_holders(config, targets)

    def why(name: str) -> str | None:
        holder = holders.get(_daemon(config, name))
        blocker = held.lost.get(holder) if holder is not None else None
        if blocker is None:
            return None
        return f"not attempted: the lease on this target was taken over by {blocker.describe()}"

    return why


def check_fresh(config: Config, plan: Plan, name: str, stores: Mapping[str, ImageStore],
                parallelism: int = DEFAULT_PARALLELISM, on_slow: SlowNote | None = None
                ) -> dict[str, TargetState]:
    """Observe every target ``plan`` changes again; raise ``StalePlan`` if it moved;
    return those observations (apply carries the plan out on them).

    ``plan`` has passed ``freshness.check_matches`` against ``config``; ``name``
    words the message (the saved plan's file name).  ``on_slow``: see
    :func:`observe_each`.
    """
    from reconciler.core import freshness

    states = observe(pick(stores, freshness.touched(plan)), parallelism, on_slow=on_slow)
    freshness.check_fresh(plan, states, name)
    return states


# -- lock, status, diff: the reading commands' flows ------------------------------------------

def run_lock(
    config: Config,
    *,
    upgrade: bool,
    sources: Collection[str],
    reader: RemoteReader,
    connect: Connect,
) -> LockOutcome:
    """``incus-images lock``: resolve, then write the lock file only if its bytes change.

    A target is contacted only when one of its tracked entries has no
    ``architecture`` (to learn the host's), a remote only when an entry needs
    resolving (:func:`reconciler.core.lock.hosts_needed`, ``remotes_needed``).
    """
    from reconciler.adapters import lockfile
    from reconciler.core import lock

    select = lock.upgrade_selector(config, upgrade, sources)
    path = lockfile.lock_path(config.path)
    current = lockfile.read(path)
    existing = current.locks() if current is not None else {}
    hosts = {t: _host_architecture(connect(config.targets[t]))
             for t in lock.hosts_needed(config)}
    catalogs = {name: reader.fetch_catalog(config.remotes[name])
                for name in lock.remotes_needed(config, hosts, existing, select)}
    new = lock.resolve(config, catalogs, hosts, existing, select)
    locked = LockFile.of(new)
    written = lockfile.write(path, locked, lockfile.schema_ref_for(config.path))
    return LockOutcome(path=path, written=written, lock=locked,
                       changes=lock.changes(existing, new))


def _host_architecture(store: ImageStore) -> str:
    arch = store.observe().host_architecture
    if not arch:
        raise IncusImagesError(f"target {store.target!r} does not report its architecture; "
                               "declare `architecture` on its entries")
    return arch


def gather_status(
    config: Config,
    *,
    offline: bool,
    reader: RemoteReader,
    connect: Connect,
    locks: Locks | None,
    verify: bool = False,
    parallelism: int = DEFAULT_PARALLELISM,
    on_slow: SlowNote | None = None,
) -> StatusRun:
    """Observe every target (``parallelism`` at once); unless ``offline``, read the
    remotes the images come from.  ``verify``: check this owner's images through every
    member (``--verify``); each member that could not be checked is a note.
    ``on_slow``: see :func:`observe_each`.

    A remote that cannot be read leaves ``update_available`` unknown (null) for its
    images and adds a note; an unreachable target is an error.  A target declared
    with ``urls:`` gets a note saying which address answered.
    """
    from reconciler.core.status import remote_for_server, shape

    stores = {name: connect(config.targets[name]) for name in sorted(config.targets)}
    states = observe(stores, parallelism, verify_for=config.owner if verify else None,
                     on_slow=on_slow)
    via = [reach.line(name) for name, reach in (reached(config, states, {}) or {}).items()]
    via += [n for s in states.values() for n in unchecked_notes(s)]
    if offline:
        return StatusRun(shape(config, states, None, locks), via)
    wanted = {e.remote for e in config.entries}
    for state in states.values():
        for img in state.images:
            if img.update_source is not None:
                remote = remote_for_server(config, img.update_source.server)
                if remote is not None:
                    wanted.add(remote.name)
    catalogs: dict[str, RemoteCatalog] = {}
    notes: list[str] = via
    for name in sorted(wanted):
        try:
            catalogs[name] = reader.fetch_catalog(config.remotes[name])
        except RemoteError as exc:
            notes.append(f"{exc}; updates from it are shown as unknown")
    return StatusRun(shape(config, states, catalogs, locks), notes)


PlanFn = Callable[[Config, Locks | None], Plan]


def run_diff(
    file: Path,
    *,
    base: str,
    head: str | None,
    environ: Mapping[str, str],
    plan: PlanFn,
    load: Callable[[bytes, str, Path], Config] | None = None,
) -> DiffReport:
    """Compare ``file`` (and its lock file) at ``base`` and ``head``; plan the head.

    The head defaults to the working tree; a file or lock file missing at a
    revision reads as absent (everything added, or removed), never as an error.
    A file read from a revision is validated like the working tree file, with its
    relative paths resolved against the working tree's directory of the file; the
    head must validate (it is planned), a base that does not is reported as a note.

    ``plan(config, locks)`` plans against the live stores (the CLI passes
    :func:`make_plan`); ``load(raw, label, base_dir)`` validates bytes (default:
    :func:`reconciler.desired.load.load_config_bytes` with ``environ``).
    """
    from reconciler.adapters.git import read_at
    from reconciler.adapters.lockfile import lock_path
    from reconciler.core.diff import WORKING_TREE, diff_entries, diff_locks, diff_settings
    from reconciler.desired.load import load_config_bytes

    def default_load(raw: bytes, label: str, base_dir: Path) -> Config:
        return load_config_bytes(raw, file=label, base_dir=base_dir, environ=environ)

    validate = load or default_load
    lpath = lock_path(file)
    notes: list[str] = []
    head_label = head or WORKING_TREE
    if head is None:
        head_config = validate(_read(file), str(file), file.parent)
        head_lock_bytes = _read(lpath) if lpath.exists() else None
    else:
        raw = read_at(file, head)
        if raw is None:
            raise IncusImagesError(f"{file} does not exist at revision {head!r}")
        head_config = validate(raw, f"{file}@{head}", file.parent)
        head_lock_bytes = read_at(lpath, head)
    head_lock = _lock_text(head_lock_bytes, f"{lpath.name}@{head_label}", notes)
    if head_lock_bytes is not None and head_lock is None:
        raise IncusImagesError(notes.pop())

    base_raw = read_at(file, base)
    base_config: Config | None = None
    entries: list[EntryDiff] | None
    if base_raw is None:
        notes.append(f"{file.name} does not exist at {base}: every entry is new")
        entries = diff_entries(None, head_config)
    else:
        try:
            base_config = validate(base_raw, f"{file}@{base}", file.parent)
            entries = diff_entries(base_config, head_config)
        except ValidationFailed as exc:
            entries = None
            notes.append(f"{file.name} at {base} does not validate "
                         f"({len(exc.diagnostics)} problem(s), first: "
                         f"{exc.diagnostics[0] if exc.diagnostics else '?'}); "
                         "entry changes are not shown")
    base_lock = _lock_text(read_at(lpath, base), f"{lpath.name}@{base}", notes)
    the_plan = plan(head_config, head_lock.locks() if head_lock else None)
    return DiffReport(
        file_name=file.name, lock_name=lpath.name, base=base, head=head_label,
        entries=entries, settings=diff_settings(base_config, head_config),
        locks=diff_locks(base_lock, head_lock), plan=the_plan, notes=notes)


def _lock_text(data: bytes | None, name: str, notes: list[str]) -> LockFile | None:
    """The lock file in ``data`` (None: absent); a bad one is a note and None."""
    from reconciler.adapters.lockfile import LockFileError, parse

    if data is None:
        return None
    try:
        return parse(data.decode("utf-8", errors="replace"), name=name)
    except LockFileError as exc:
        notes.append(str(exc))
        return None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise IncusImagesError(f"cannot read {path}: {exc.strerror or exc}") from None
