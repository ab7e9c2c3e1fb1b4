"""A lease per daemon, so that two applies never interleave on one image store.

The lease is a JSON value ``{"holder", "since", "expires", "token"}`` in the
daemon's server config under :data:`LEASE_KEY` (``user.*`` keys are accepted
there; ``reconciler.core.inventory.parse_config`` reads it as neither a setting nor an
inventory: it has no ``.<project>`` suffix).  ``holder`` is ``owner@host:pid``
for people; ``token`` identifies one run.

Invariants:

* The core is pure: :func:`decide` and :func:`claim` take the time as an
  argument and do no I/O.  :class:`Lease` is the thin loop around them.
* Every write is compare-and-swap (``If-Match`` on ``GET /1.0``'s ETag), so two
  runs can never both take a free lease.
* A lease is this run's when its token matches; taking it again only extends it
  (two targets on one daemon share one lease).
* A lease whose ``expires`` has passed is free: an apply that crashed or was
  killed stops blocking others after at most its time to live.  A running apply
  renews its leases from a background thread every third of that time.
* Sooner, on the same machine: a lease whose holder ran in this kernel boot and
  PID namespace (``host``) and whose process has ended (``pid``) is abandoned and
  free.  Elsewhere nothing is guessed: a process we cannot see may be alive.
* Release removes only this run's lease, never another's, and happens on every
  way out of the ``with`` block (success, failure, interrupt), including an
  interrupt while waiting for the lease or while taking it; an interrupt cannot
  cut a release short (:func:`reconciler.interrupts.deferred`).
* Times are the clients' own UTC clocks; clocks further apart than the time to
  live could let a lease be taken early.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Protocol

from reconciler import jsontext
from reconciler.core.inventory import MAX_ATTEMPTS, Edit, compare_and_swap
from reconciler.errors import (
    IncusImagesError,
    Interrupted,
    LeaseHeld,
    LeaseLost,
    StoreError,
)
from reconciler.interrupts import check, deferred, start_thread
from reconciler.model.times import parse_rfc3339, rfc3339_milliseconds, rfc3339_seconds
from reconciler.ports import ImageStore

LEASE_KEY = "user.incus-images.lease"
DEFAULT_TTL = 60.0
DEFAULT_TIMEOUT = 300.0
POLL_SECONDS = 1.0


@dataclass(frozen=True)
class LeaseRecord:
    """A lease as stored: who holds it, since when, until when, and the run's token.

    ``host`` identifies the kernel boot and PID namespace the holder runs in (see
    :func:`local_host`), ``pid`` its process: together they let a run on the same
    machine see that the holder is gone.  Empty/0 when unknown.
    """

    holder: str
    since: datetime
    expires: datetime
    token: str
    host: str = ""
    pid: int = 0

    def encode(self) -> str:
        return json.dumps({"holder": self.holder, "since": rfc3339_milliseconds(self.since),
                           "expires": rfc3339_milliseconds(self.expires), "token": self.token,
                           "host": self.host, "pid": self.pid},
                          sort_keys=True, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> LeaseRecord | None:
        """The stored lease, or None when there is none or it cannot be read (free)."""
        if not text:
            return None
        try:
            data = jsontext.loads(text)
            return cls(holder=str(data["holder"]), token=str(data.get("token", "")),
                       since=parse_rfc3339(str(data["since"])),
                       expires=parse_rfc3339(str(data["expires"])),
                       host=str(data.get("host", "")), pid=int(data.get("pid", 0)))
        except (ValueError, TypeError, KeyError, AttributeError):
            return None

    def describe(self) -> str:
        """``holder since T (lease expires T)``, times to the second, for people."""
        since, expires = rfc3339_seconds(self.since), rfc3339_seconds(self.expires)
        return f"{self.holder} since {since} (lease expires {expires})"


@dataclass(frozen=True)
class Holder:
    """Who takes a lease: ``name`` for people (``owner@host:pid``), ``token`` for this run."""

    name: str
    token: str
    host: str = ""
    pid: int = 0


class Verdict(StrEnum):
    FREE = "free"
    EXPIRED = "expired"
    ABANDONED = "abandoned"
    HELD = "held"
    OURS = "ours"

    @property
    def takeable(self) -> bool:
        return self is not Verdict.HELD


def decide(current: LeaseRecord | None, *, token: str, now: datetime,
           holder_gone: bool = False) -> Verdict:
    """Whether the run with ``token`` may take (or keep) the lease ``current`` at ``now``.

    ``holder_gone`` says the holder's process is known to have ended (same machine).
    """
    if current is None:
        return Verdict.FREE
    if current.token == token:
        return Verdict.OURS
    if current.expires <= now:
        return Verdict.EXPIRED
    if holder_gone:
        return Verdict.ABANDONED
    return Verdict.HELD


def claim(current: LeaseRecord | None, *, me: Holder, now: datetime,
          ttl: timedelta) -> LeaseRecord:
    """The lease to write when taking or renewing: ``since`` is kept when it is ours."""
    since = current.since if current is not None and current.token == me.token else now
    return LeaseRecord(holder=me.name, since=since, expires=now + ttl, token=me.token,
                       host=me.host, pid=me.pid)


def holder_name(owner: str) -> str:
    """``owner@host:pid``: who holds a lease, for people."""
    return f"{owner}@{socket.gethostname()}:{os.getpid()}"


def local_host() -> str:
    """This kernel boot and PID namespace ("" when unknown): PIDs compare only within one."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return ""
    return f"{boot}/{namespace}" if boot else ""


def process_gone(pid: int) -> bool:
    """True only when process ``pid`` (of this PID namespace) surely no longer runs."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a killed process not yet reaped by its parent is a zombie: it runs no more
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state in ("Z", "X")


def _holder_gone(record: LeaseRecord, here: str) -> bool:
    return bool(here) and record.host == here and process_gone(record.pid)


# -- the thin loop --------------------------------------------------------------------------

class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class Lease:
    """The lease on one daemon, through ``store`` (named ``target`` in messages)."""

    def __init__(self, target: str, store: ImageStore, *, me: Holder, ttl: timedelta,
                 clock: Clock, gone: Callable[[LeaseRecord], bool] | None = None) -> None:
        self.target = target
        self.store = store
        self.me = me
        self.ttl = ttl
        self.clock = clock
        here = me.host
        self.gone = gone or (lambda record: _holder_gone(record, here))

    def take(self) -> LeaseRecord | None:
        """Take, or extend, the lease.  None when it is ours now; else the one in the way."""

        def edit(config: dict[str, str]) -> Edit[LeaseRecord | None]:
            current = LeaseRecord.decode(config.get(LEASE_KEY, ""))
            now = self.clock.now()
            verdict = decide(current, token=self.me.token, now=now)
            if verdict is Verdict.HELD and current is not None:
                verdict = decide(current, token=self.me.token, now=now,
                                 holder_gone=self.gone(current))
            if not verdict.takeable:
                return Edit(None, current)
            new = claim(current, me=self.me, now=now, ttl=self.ttl)
            return Edit({LEASE_KEY: new.encode()}, None)

        def gave_up() -> LeaseRecord | None:
            raise StoreError(self.target, f"could not write the lease {LEASE_KEY}: the server "
                             f"config kept changing ({MAX_ATTEMPTS} attempts)")

        return compare_and_swap(self.store, edit, gave_up=gave_up)

    def release(self) -> bool:
        """Remove the lease if it is still ours; leave anybody else's alone.

        True when this call removed it (False: it was not ours, or kept changing).
        """

        def edit(config: dict[str, str]) -> Edit[bool]:
            current = LeaseRecord.decode(config.get(LEASE_KEY, ""))
            if decide(current, token=self.me.token, now=self.clock.now()) is not Verdict.OURS:
                return Edit(None, False)
            return Edit({LEASE_KEY: ""}, True)

        return compare_and_swap(self.store, edit, gave_up=lambda: False)

    def acquire(self, *, timeout: float, on_wait: Callable[[str, LeaseRecord], None],
                poll: float = POLL_SECONDS) -> None:
        """Take the lease, waiting up to ``timeout`` seconds for its holder to let go.

        ``on_wait`` hears about each holder once.  Raises :class:`LeaseHeld`.
        """
        deadline = self.clock.now() + timedelta(seconds=max(timeout, 0.0))
        reported: tuple[str, str, datetime] | None = None
        while True:
            blocker = self.take()
            if blocker is None:
                return
            now = self.clock.now()
            if now >= deadline:
                raise LeaseHeld(f"target {self.target!r} is locked by {blocker.describe()}; "
                                f"gave up after {timeout:g}s (--lock-timeout)")
            who = (blocker.holder, blocker.token, blocker.since)
            if who != reported:
                on_wait(self.target, blocker)
                reported = who
            until_free = (blocker.expires - now).total_seconds() + 0.05
            left = (deadline - now).total_seconds()
            self.clock.sleep(max(0.01, min(poll, left, until_free)))
            check()  # a signal whose exception Python dropped stops the wait


class Leases:
    """Hold a lease on each daemon for a ``with`` block, renewed in the background.

    Leases are taken in the given order (callers sort by daemon, so two runs never
    wait on each other crosswise for long) and released in reverse on exit.  A
    failure to take one releases those already taken.  If a lease was lost while
    the block ran, leaving the block raises :class:`LeaseLost` (unless the block
    itself raised).  ``on_note`` hears about renewals or releases that failed.
    With ``set_aside_failed``, a daemon that fails (a ``StoreError``: unreachable, no
    quorum...) while its lease is taken is set aside in :attr:`failed` instead, and the
    other leases are taken: one unreachable target does not stop the others.

    On an :class:`~reconciler.errors.Interrupted` (SIGINT, SIGTERM) the leases are
    released like on any way out, including while waiting for one, and the
    interrupt is told what happened (``waiting``, ``leases``) for its one line.
    Leases still held when the object is collected or the interpreter exits (an
    interrupt that landed before ``__exit__`` could run) are released then.
    """

    def __init__(self, stores: Sequence[tuple[str, ImageStore]], *, owner: str,
                 ttl: float = DEFAULT_TTL, timeout: float = DEFAULT_TIMEOUT,
                 on_wait: Callable[[str, LeaseRecord], None],
                 on_note: Callable[[str], None], clock: Clock | None = None,
                 poll: float = POLL_SECONDS, set_aside_failed: bool = False) -> None:
        self.clock = clock or SystemClock()
        me = Holder(name=holder_name(owner), token=uuid.uuid4().hex, host=local_host(),
                    pid=os.getpid())
        self.leases = [Lease(t, s, me=me, ttl=timedelta(seconds=ttl), clock=self.clock)
                       for t, s in stores]
        self.ttl = ttl
        self.timeout = timeout
        self.poll = poll
        self.on_wait = on_wait
        self.on_note = on_note
        self.lost: dict[str, LeaseRecord] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._held: list[Lease] = []
        self._released: list[str] = []
        self._kept: list[str] = []
        self.set_aside_failed = set_aside_failed
        self.failed: dict[str, StoreError] = {}
        """With ``set_aside_failed``: the targets whose daemon failed while its lease was
        taken (unreachable...), with the error; the other leases are held all the same."""
        weakref.finalize(self, _release_left, self._held, self._stop)

    def __enter__(self) -> Leases:
        waiting: list[str] = []

        def on_wait(target: str, holder: LeaseRecord) -> None:
            waiting[:] = [target]
            self.on_wait(target, holder)

        taking: Lease | None = None
        try:
            for lease in self.leases:
                # Held before it is taken: an interrupt may land after the daemon
                # stored the lease and before take() returned.  Releasing a lease
                # that is not ours leaves it alone.
                self._held.append(lease)
                taking = lease
                waiting.clear()
                try:
                    lease.acquire(timeout=self.timeout, on_wait=on_wait, poll=self.poll)
                except StoreError as exc:
                    if not self.set_aside_failed:
                        raise
                    self._held.remove(lease)  # its daemon failed: not ours, nothing to release
                    self.failed[lease.target] = exc
                taking = None
            if self._held:
                self._thread = threading.Thread(target=self._renew_loop,
                                                name="incus-images-lease", daemon=True)
                start_thread(self._thread)
            return self
        except BaseException as exc:
            if isinstance(exc, IncusImagesError) and taking is not None:
                self._held.remove(taking)  # it failed before or while writing: not ours
            released = self._release_now()
            if isinstance(exc, Interrupted):
                if waiting:
                    exc.waiting = f"stopped while waiting for the lease on target {waiting[0]!r}"
                exc.leases = released
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        released = self._release_now()
        if isinstance(exc, Interrupted):
            exc.leases = released
        if self.lost and exc_type is None:
            raise LeaseLost("\n".join(
                f"target {t!r}: this apply's lease was taken over by {b.describe()} while it "
                "ran; another apply may have interleaved: run plan to check"
                for t, b in sorted(self.lost.items())))

    def _release_now(self) -> str:
        """Stop renewing and release every lease, shielded from interrupts.

        A signal arriving during the release is raised only once it is done
        (:func:`reconciler.interrupts.deferred`); one arriving just before it
        started is raised after releasing all the same (a run is interrupted at
        most once).  Returns what happened, for the line an interrupt prints:
        ``lease released``, which were not, or "".
        """
        try:
            self._release_shielded()
        except Interrupted as late:
            self._release_shielded()
            late.leases = self._outcome()
            raise
        return self._outcome()

    def _release_shielded(self) -> None:
        with deferred():
            self._stop.set()
            if self._thread is not None and self._thread.ident is not None:
                self._thread.join()
            self._release()

    def _renew_loop(self) -> None:
        """Renew every third of the time to live, counted from the start of the last
        round: after a round the daemon held back (it holds every config write while it
        lists images) the next starts at once, not a third later."""
        interval = max(self.ttl / 3.0, 0.1)
        wait = interval
        while not self._stop.wait(wait):
            started = self.clock.now()
            self._renew_round()
            spent = (self.clock.now() - started).total_seconds()
            wait = min(interval, max(0.0, interval - spent))  # a clock set back: a third

    def _renew_round(self) -> None:
        for lease in self._held:
            if lease.target in self.lost:
                continue
            try:
                blocker = lease.take()
            except IncusImagesError as exc:
                self.on_note(f"could not renew the lease: {exc}")
                continue
            if blocker is not None:
                self.lost[lease.target] = blocker

    def _release(self) -> None:
        while self._held:
            lease = self._held.pop()
            if lease.target in self.lost:
                continue
            try:
                if lease.release():
                    self._released.append(lease.target)
            except IncusImagesError as exc:
                self._kept.append(lease.target)
                self.on_note(f"could not release the lease (it expires on its own): {exc}")

    def _outcome(self) -> str:
        if self._kept:
            return (f"lease on target(s) {', '.join(repr(t) for t in sorted(self._kept))} not "
                    "released (it expires on its own)")
        count = len(self._released)
        return f"lease{'s' if count > 1 else ''} released" if count else ""


def _release_left(held: list[Lease], stop: threading.Event) -> None:
    """Last resort, at garbage collection or interpreter exit: release leases a
    ``with`` block did not (an interrupt that landed before ``__exit__`` could
    start).  Releasing a lease that is not ours leaves it alone."""
    stop.set()
    while held:
        lease = held.pop()
        with suppress(Exception):  # nobody is left to tell
            lease.release()


def _start_without_signals(thread: threading.Thread) -> None:
    """Start ``thread`` with SIGINT and SIGTERM blocked in it.

    The kernel may deliver a process signal to any thread that does not block it;
    one delivered to a helper thread would not interrupt the main thread's
    blocking read (the confirmation prompt), and Ctrl-C would seem ignored.
    """
    start_thread(thread)
