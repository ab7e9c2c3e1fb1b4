"""The Incus adapter's wait for an operation, against a scripted daemon (no sockets).

``ScriptedDaemon`` answers the requests ``IncusStore`` sends through its session the
way Incus 6.0.4 does (checked on the real daemon): a ``/wait?timeout=N`` that times
out on a running operation answers HTTP 200 with an error envelope, ``error_code``
500 "context deadline exceeded"; ``DELETE /1.0/operations/<id>`` of a running image
download cancels it, which then fails with "context canceled".  Time is a fake
clock that the waits advance, so nothing here sleeps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from reconciler.adapters.http import Transport
from reconciler.adapters.incus import IncusStore
from reconciler.errors import OperationAbandoned, OperationFailed
from reconciler.model.config import TargetSpec
from reconciler.model.plan import PullSource, Writable

OP = "/1.0/operations/0123-op"
FP = "a" * 64
DEADLINE = {"type": "error", "status": "", "status_code": 0, "operation": "",
            "error_code": 500, "error": "context deadline exceeded", "metadata": None}


@dataclass
class ScriptedDaemon:
    """One image download that takes ``duration`` seconds of the fake clock."""

    duration: float
    outcome: str = "success"
    """How the download ends on its own: "success", or the error it fails with."""
    cancellable: bool = True
    ends_after_cancel: float = 0.5
    """Seconds a cancelled download takes to stop."""
    now: float = 0.0
    cancelled_at: float | None = None
    log: list[str] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    # -- the operation ----------------------------------------------------------------------

    def _end(self) -> float:
        if self.cancelled_at is not None:
            return min(self.duration, self.cancelled_at + self.ends_after_cancel)
        return self.duration

    def _op(self) -> dict[str, Any]:
        running = self.now < self._end()
        meta: dict[str, Any] = {"download_progress": f"rootfs: {int(self.now)}s"}
        op = {"id": "0123-op", "class": "task", "description": "Downloading image",
              "status": "Running", "status_code": 103, "metadata": meta, "err": "",
              "may_cancel": False}
        if running:
            return op
        if self._end() < self.duration:  # the cancel stopped it first
            return {**op, "status": "Failure", "status_code": 400, "err": "context canceled"}
        if self.outcome != "success":
            return {**op, "status": "Failure", "status_code": 400, "err": self.outcome}
        return {**op, "status": "Success", "status_code": 200,
                "metadata": {"fingerprint": FP, "size": 1}}

    # -- the session ----------------------------------------------------------------------

    def request(self, method: str, url: str, *, params: dict[str, str] | None = None,
                **_: Any) -> requests.Response:
        path = urlsplit(url).path
        params = params or {}
        self.log.append(f"{method} {path}" + (f"?timeout={params['timeout']}"
                                              if "timeout" in params else ""))
        if method == "GET" and path == "/1.0/images":  # the project holds no image
            return _answer(200, {"type": "sync", "status": "Success", "status_code": 200,
                                 "metadata": []})
        if method == "POST" and path == "/1.0/images":
            return _answer(202, {"type": "async", "status": "Operation created",
                                 "status_code": 100, "operation": OP, "metadata": self._op()})
        if method == "GET" and path == OP + "/wait":
            timeout = float(params["timeout"])
            if self.now + timeout < self._end():
                self.now += timeout
                return _answer(200, DEADLINE)
            self.now = max(self.now, self._end())
            op = self._op()
            if op["status_code"] != 200:
                return _answer(200, {"type": "error", "error_code": 500, "error": op["err"],
                                     "metadata": None})
            return _answer(200, {"type": "sync", "status": "Success", "status_code": 200,
                                 "metadata": op})
        if method == "GET" and path == OP:
            return _answer(200, {"type": "sync", "status": "Success", "status_code": 200,
                                 "metadata": self._op()})
        if method == "DELETE" and path == OP:
            if not self.cancellable or self.now >= self._end():
                return _answer(403, {"type": "error", "error_code": 403,
                                     "error": "This operation can't be cancelled"})
            self.cancelled_at = self.now
            return _answer(200, {"type": "sync", "status": "Success", "status_code": 200,
                                 "metadata": {}})
        raise AssertionError(f"unexpected request {method} {path}")

    def close(self) -> None:
        pass


def _answer(status: int, body: dict[str, Any]) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp._content = json.dumps(body).encode()
    resp.headers["Content-Type"] = "application/json"
    return resp


def store_for(daemon: ScriptedDaemon, *, operation_timeout: float = 3600.0) -> IncusStore:
    transport = Transport(session=daemon, base="http://incus.socket",  # type: ignore[arg-type]
                          display="unix:///scripted")
    spec = TargetSpec(name="local", url="unix:///scripted")
    return IncusStore(spec, transport, operation_timeout=operation_timeout, clock=daemon.clock)


PULL = PullSource(remote="r", server="https://images.example", protocol="simplestreams",
                  alias="deb/12")
WRITABLE = Writable(auto_update=True, public=False, profiles=("default",), properties={})


def pull(store: IncusStore, progress: list[str] | None = None) -> str:
    seen = progress if progress is not None else []
    return store.pull_image(PULL, certificate=None, writable=WRITABLE, progress=seen.append)


def test_a_pull_that_outlasts_many_wait_rounds_is_waited_for() -> None:
    daemon = ScriptedDaemon(duration=9.0)
    progress: list[str] = []
    assert pull(store_for(daemon), progress) == FP
    waits = [r for r in daemon.log if r.startswith(f"GET {OP}/wait")]
    assert len(waits) == 5  # 2 + 2 + 2 + 2 s answered "deadline exceeded", then the end
    assert not any(r.startswith("DELETE") for r in daemon.log)
    assert progress == ["rootfs: 0s", "rootfs: 2s", "rootfs: 4s", "rootfs: 6s", "rootfs: 8s"]


def test_an_operation_that_failed_with_the_deadline_text_is_a_failure() -> None:
    daemon = ScriptedDaemon(duration=3.0, outcome="context deadline exceeded")
    with pytest.raises(OperationFailed, match="context deadline exceeded") as caught:
        pull(store_for(daemon))
    assert not isinstance(caught.value, OperationAbandoned)
    assert not any(r.startswith("DELETE") for r in daemon.log)


def test_giving_up_cancels_the_operation_and_says_so() -> None:
    daemon = ScriptedDaemon(duration=100.0)
    with pytest.raises(OperationAbandoned) as caught:
        pull(store_for(daemon, operation_timeout=5))
    assert caught.value.cancelled
    assert f"DELETE {OP}" in daemon.log
    assert daemon.cancelled_at == 5.0
    assert "gave up after 5s (--operation-timeout); the daemon cancelled it" in str(
        caught.value)


def test_a_refused_cancel_leaves_the_outcome_unknown() -> None:
    daemon = ScriptedDaemon(duration=100.0, cancellable=False)
    with pytest.raises(OperationAbandoned, match="may still land") as caught:
        pull(store_for(daemon, operation_timeout=5))
    assert not caught.value.cancelled
    assert daemon.now < 5 + 15 + 2  # the grace after the cancel is bounded too


def test_an_operation_that_ends_well_while_being_cancelled_counts() -> None:
    daemon = ScriptedDaemon(duration=6.0, ends_after_cancel=10.0)
    assert pull(store_for(daemon, operation_timeout=5)) == FP
    assert f"DELETE {OP}" in daemon.log


def test_an_interrupt_while_waiting_cancels_the_operation() -> None:
    daemon = ScriptedDaemon(duration=100.0)

    def interrupted(text: str) -> None:
        if daemon.now >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store_for(daemon).pull_image(PULL, certificate=None, writable=WRITABLE,
                                     progress=interrupted)
    assert daemon.log[-1] == f"DELETE {OP}"
    assert daemon.cancelled_at == 4.0
