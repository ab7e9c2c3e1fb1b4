"""A real 3-member Incus cluster on 127.0.0.1, 127.0.0.2 and 127.0.0.3, for integration tests.

Invariants:

* Member ``i`` (1-based) is a :class:`ClusterDaemon` with its own ``INCUS_DIR`` and listens
  on ``127.0.0.i:<free port>`` (``core.https_address`` = ``cluster.https_address``);
  ``127.0.0.0/8`` is local, so no setup is needed.  Its server name is ``m<i>``.
* Members start in parallel: a lone member of a stopped cluster waits for quorum and never
  becomes ready, so :meth:`Cluster.restart` starts every member it is given at once.
* The harness only signals the PIDs it started (SIGKILL by PID) and lazily unmounts what a
  killed daemon leaves; :meth:`Cluster.teardown` removes every directory.
* After forming, ``cluster.offline_threshold`` is 11 s (the daemon wants more than 10), so a killed
  member is marked Offline quickly, and ``images.auto_update_interval`` is 0.
* The harness never ``PATCH``es ``/1.0`` on a member that restarts (Incus 6.0.4/6.0.5 erase a
  member's own settings when a cluster-wide write fails); the only server writes happen while
  forming the cluster.

The harness talks to the daemons with the standard library only (through
:class:`tests.support.incusd.Incusd`), so it never depends on the code under test.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from reconciler.model.config import TargetSpec
from tests.support.incusd import ClientCert, DaemonError, Incusd

SIZE = 3
OFFLINE_THRESHOLD = 11
"""Seconds without heartbeat before the others mark a member Offline (Incus wants > 10)."""
OFFLINE_TIMEOUT = 60.0
_T = TypeVar("_T")


class ClusterDaemon(Incusd):
    """An :class:`Incusd` that, once clustered, is never written to by :meth:`start`."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index
        self.name = f"m{index}"
        self.host = f"127.0.0.{index}"
        self.clustered = False

    def _after_ready(self) -> None:
        # A clustered member's settings are cluster-wide and set once while forming; a
        # restart never writes /1.0 (see the module invariants).
        if not self.clustered:
            super()._after_ready()

    def listen(self) -> None:
        """Listen for clients and members on ``127.0.0.<index>:<free port>``."""
        last: Exception | None = None
        for _ in range(5):
            address = f"{self.host}:{_free_port(self.host)}"
            try:
                self.set_config({"core.https_address": address,
                                 "cluster.https_address": address})
            except DaemonError as exc:
                last = exc
                continue
            self.https_address = address
            self._wait_https()
            return
        raise DaemonError(f"{self.name}: could not listen on {self.host}: {last}")

    def cluster_cert_pem(self) -> str:
        return (self.dir / "cluster.crt").read_text()


class Cluster:
    """Three members forming one cluster; see the module invariants."""

    def __init__(self, size: int = SIZE) -> None:
        self.members = [ClusterDaemon(i) for i in range(1, size + 1)]
        self._cert: ClientCert | None = None

    # -- forming -------------------------------------------------------------------------

    def form(self) -> None:
        """Cold start every member at once, bootstrap m1, join the others, tune timings."""
        _parallel([m.start for m in self.members])
        _parallel([m.listen for m in self.members])
        first = self.members[0]
        first.api("PUT", "/1.0/cluster", {"server_name": first.name, "enabled": True})
        first.clustered = True
        tokens = {m.name: self._join_token(m.name) for m in self.members[1:]}
        cert = first.cluster_cert_pem()
        for member in self.members[1:]:  # one at a time: each join changes the raft setup
            member.api("PUT", "/1.0/cluster", {
                "server_name": member.name, "enabled": True,
                "server_address": member.https_address,
                "cluster_address": first.https_address,
                "cluster_certificate": cert, "cluster_token": tokens[member.name],
                "member_config": [],
            })
            member.clustered = True
        first.set_config({"cluster.offline_threshold": str(OFFLINE_THRESHOLD),
                          "images.auto_update_interval": "0"})
        self.wait_online(*range(1, len(self.members) + 1))

    def _join_token(self, name: str) -> str:
        # A token is an operation that runs until it is used or expires: never wait for it.
        operation = self.members[0].api("POST", "/1.0/cluster/members",
                                        {"server_name": name}, wait=False).metadata
        meta = operation["metadata"]
        fields = {"server_name": meta["serverName"], "fingerprint": meta["fingerprint"],
                  "addresses": meta["addresses"], "secret": meta["secret"],
                  "expires_at": meta["expiresAt"]}
        return base64.b64encode(json.dumps(fields).encode()).decode()

    # -- reaching members ----------------------------------------------------------------

    def member(self, i: int) -> ClusterDaemon:
        return self.members[i - 1]

    def socket_target(self, i: int, name: str = "c", project: str = "default") -> TargetSpec:
        """A target reaching member ``i`` over its unix socket."""
        return self.member(i).target(name, project)

    @property
    def client_cert(self) -> ClientCert:
        """A client certificate trusted by the cluster (made on first use)."""
        if self._cert is None:
            survivor = self.running_member()
            self._cert = survivor.make_client_cert("cluster-client")
        return self._cert

    def https_target(self, i: int, name: str = "c", project: str = "default") -> TargetSpec:
        """A target reaching member ``i`` over HTTPS with :attr:`client_cert`, pinning the
        cluster certificate (every member serves it)."""
        member = self.member(i)
        return member.https_target(self.client_cert, name, project,
                                   server_cert=self.members[0].cluster_cert_pem())

    def url(self, i: int) -> str:
        return self.member(i).https_url

    def running_member(self) -> ClusterDaemon:
        for member in self.members:
            if member.running:
                return member
        raise DaemonError("no cluster member is running")

    def api(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        """A raw API call through the first running member; returns the metadata."""
        return self.running_member().api(method, path, body, **kw).metadata

    def statuses(self, via: int | None = None) -> dict[str, str]:
        """Each member's ``status`` as a running member (or member ``via``) reports it."""
        daemon = self.member(via) if via else self.running_member()
        rows = daemon.api("GET", "/1.0/cluster/members?recursion=1").metadata
        return {row["server_name"]: row["status"] for row in rows}

    # -- failures ------------------------------------------------------------------------

    def kill(self, *indices: int) -> None:
        """SIGKILL members by PID; their directories stay, ready for :meth:`restart`."""
        for i in indices:
            member = self.member(i)
            member.kill9()
            member._unmount()

    def restart(self, *indices: int) -> None:
        """Start the given (killed) members at once and wait until they are ready."""
        _parallel([self.member(i).start for i in indices])

    def wait_offline(self, i: int, timeout: float = OFFLINE_TIMEOUT) -> None:
        """Poll a survivor until it lists member ``i`` as Offline."""
        self._wait_status(i, lambda status: status == "Offline", timeout)

    def wait_online(self, *indices: int, timeout: float = OFFLINE_TIMEOUT) -> None:
        """Poll until a running member lists each of ``indices`` as Online."""
        for i in indices:
            self._wait_status(i, lambda status: status == "Online", timeout)

    def wait_quorum(self, timeout: float = OFFLINE_TIMEOUT) -> None:
        """Poll a running member until it lists the members again: after a member is
        killed the survivors may first have to elect a database leader, and until then
        every member list fails ("no available cowsql leader server found")."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.statuses()
                return
            except DaemonError:
                if time.monotonic() >= deadline:
                    raise
            time.sleep(0.25)

    def _wait_status(self, i: int, wanted: Callable[[str], bool], timeout: float) -> None:
        name = self.member(i).name
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            try:
                last = self.statuses().get(name)
            except DaemonError as exc:
                last = exc
            if isinstance(last, str) and wanted(last):
                return
            time.sleep(0.25)
        raise DaemonError(f"{name} still {last!r} after {timeout}s")

    def break_copy(self, i: int, fingerprint: str) -> list[Path]:
        """Remove image ``fingerprint``'s files from member ``i``'s ``images/``; return them."""
        removed = sorted((self.member(i).dir / "images").glob(f"{fingerprint}*"))
        for path in removed:
            path.unlink()
        return removed

    def holds(self, i: int, fingerprint: str) -> bool:
        """Whether member ``i`` has the image's files on disk."""
        return (self.member(i).dir / "images" / fingerprint).exists()

    # -- teardown ------------------------------------------------------------------------

    def teardown(self) -> None:
        """Kill every member by PID, unmount leftovers lazily, remove the directories."""
        for member in self.members:
            with contextlib.suppress(Exception):
                member.stop()


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _parallel(calls: Sequence[Callable[[], _T]]) -> list[_T]:
    """Run ``calls`` at once; re-raise the first failure after all of them ended."""
    with ThreadPoolExecutor(max_workers=max(1, len(calls))) as pool:
        futures = [pool.submit(call) for call in calls]
    return [f.result() for f in futures]


@contextlib.contextmanager
def running_cluster(size: int = SIZE) -> Iterator[Cluster]:
    """A formed cluster, torn down when the block ends (also on failure while forming)."""
    cluster = Cluster(size)
    try:
        cluster.form()
        yield cluster
    finally:
        cluster.teardown()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A real 3-member cluster shared by a test module (about 4 s to form)."""
    from tests.conftest import require_incusd

    require_incusd()
    with running_cluster() as formed:
        yield formed
