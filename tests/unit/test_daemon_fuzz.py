"""Any daemon answer gives the tool's own error or a result, never a crash (exit 3).

A scripted daemon (no sockets) answers each request with an envelope drawn by
hypothesis: mostly a real answer's shape (Incus 6.0) with some values replaced by
arbitrary JSON, sometimes anything at all; HTTP statuses and ETags vary too.  The
adapter's reads and writes that plan and apply use are driven against it; whatever
they raise must be an :class:`~reconciler.errors.IncusImagesError`, which the CLI
prints as one line with exit 1.  Cluster members are never connected to (the reach
check is replaced), so nothing leaves the process.  ``FUZZ_EXAMPLES=5000`` searches
longer, at random.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.adapters import incus
from reconciler.adapters.http import Transport
from reconciler.adapters.incus import IncusStore
from reconciler.errors import IncusImagesError
from reconciler.model.config import TargetSpec
from reconciler.model.plan import PullSource, Writable
from tests.support.nearjson import JSON, near

FP = "b" * 64
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0"))
"""0: the same 100 examples each run (fast, repeatable); N: a random search of N examples."""

IMAGE: dict[str, Any] = {
    "fingerprint": FP, "filename": "", "size": 1024, "type": "container",
    "architecture": "x86_64", "public": False, "auto_update": True, "cached": False,
    "properties": {"os": "Debian"}, "profiles": ["default"],
    "aliases": [{"name": "deb", "description": ""}],
    "update_source": {"server": "https://images.example", "protocol": "simplestreams",
                      "alias": "deb/12", "certificate": "", "image_type": ""},
    "created_at": "2026-01-01T00:00:00Z", "uploaded_at": "2026-01-02T00:00:00Z",
    "last_used_at": "0001-01-01T00:00:00Z", "expires_at": "1970-01-01T00:00:00Z",
    "project": "default",
}

SERVER: dict[str, Any] = {
    "auth": "trusted", "auth_user_method": "tls", "auth_user_name": "ab12",
    "config": {"storage.images_volume": "pool/images", "user.x": "1"},
    "environment": {"architectures": ["x86_64", "i686"], "server_version": "6.0.4",
                    "server_clustered": True, "server_name": "m1",
                    "certificate_fingerprint": "ab" * 32, "kernel_version": "6.1.0",
                    "server_pid": 7},
    "api_extensions": ["images"],
}

OPERATION: dict[str, Any] = {
    "id": "op1", "class": "task", "status": "Success", "status_code": 200,
    "metadata": {"fingerprint": FP, "download_progress": "rootfs: 50%"}, "err": "",
    "may_cancel": True,
}

ANSWERS: list[tuple[str, str, Any]] = [
    ("GET", r"/1\.0", SERVER),
    ("GET", r"/1\.0/images", [IMAGE]),
    ("GET", r"/1\.0/images/aliases", [{"name": "deb", "target": FP, "description": ""}]),
    ("GET", r"/1\.0/images/[^/]+", IMAGE),
    ("GET", r"/1\.0/profiles", [{"name": "default", "config": {}, "devices": {},
                                 "used_by": []}]),
    ("GET", r"/1\.0/instances", [{"name": "c1", "config": {"volatile.base_image": FP},
                                  "project": "default"}]),
    ("GET", r"/1\.0/projects/.+", {"name": "p", "config": {"features.images": "true"}}),
    ("GET", r"/1\.0/cluster/members", [{"server_name": "m1", "url": "https://m1:8443",
                                         "status": "Online", "message": "Fully operational",
                                         "roles": ["database"], "database": True}]),
    ("GET", r"/1\.0/cluster/members/.+/state",
     {"storage_pools": {"pool": {"space": {"used": 1, "total": 10}}}}),
    ("GET", r"/1\.0/storage-pools/.+/resources", {"space": {"used": 1, "total": 10}}),
    ("GET", r"/1\.0/certificates/.+", {"restricted": False, "projects": []}),
    ("GET", r"/1\.0/operations/.+/wait", OPERATION),
    ("POST", r"/1\.0/images", {"id": "op1", "status_code": 103, "metadata": {}}),
]

WRITABLE = Writable(auto_update=True, public=False, profiles=("default",),
                    properties={"team": "ops", "gone": None})

def _envelope(kind: str, metadata: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """An Incus envelope near a real one of ``kind`` (sync or async), or any JSON."""
    return st.one_of(st.fixed_dictionaries({
        "type": st.one_of(st.just(kind), st.just(kind), st.just("error"), JSON),
        "status": st.just("Success"),
        "status_code": st.one_of(st.just(200), JSON),
        "error_code": st.one_of(st.just(0), st.sampled_from([400, 404, 409, 412, 500]), JSON),
        "error": st.one_of(st.just(""), JSON),
        "operation": st.one_of(st.just("/1.0/operations/op1"), JSON),
        "metadata": metadata,
    }), JSON)


ENVELOPES = [(method, re.compile(pattern),
              _envelope("async" if method == "POST" else "sync", near(answer)))
             for method, pattern, answer in ANSWERS]
OTHER = _envelope("sync", near({}))
STATUS = st.sampled_from([200, 200, 200, 202, 404, 412, 500, 503])
ETAG = st.sampled_from(['"e1"', "", '"x"'])


def envelope_for(method: str, path: str) -> st.SearchStrategy[Any]:
    for m, pattern, strategy in ENVELOPES:
        if m == method and pattern.fullmatch(path):
            return strategy
    return OTHER


class FuzzDaemon:
    """Answers every request with an envelope drawn from ``draw``."""

    def __init__(self, draw: Callable[[st.SearchStrategy[Any]], Any]) -> None:
        self.draw = draw
        self.requests = 0

    def request(self, method: str, url: str, **_: Any) -> requests.Response:
        self.requests += 1
        if self.requests > 200:
            raise AssertionError("more than 200 requests for one call")
        body = self.draw(envelope_for(method, urlsplit(url).path))
        resp = requests.Response()
        resp.status_code = self.draw(STATUS)
        resp._content = json.dumps(body).encode()
        resp.headers["Content-Type"] = "application/json"
        resp.headers["ETag"] = self.draw(ETAG)
        resp.url = url
        return resp

    def close(self) -> None:
        pass


CALLS: dict[str, Callable[[IncusStore], object]] = {
    "observe": lambda s: s.observe(),
    "check": lambda s: s.check(),
    "get_server_config": lambda s: s.get_server_config(),
    "patch_server_config": lambda s: s.patch_server_config({"user.a": "b"}, '"e1"'),
    "get_image": lambda s: s.get_image(FP),
    "get_aliases": lambda s: s.get_aliases(),
    "pull_image": lambda s: s.pull_image(
        PullSource(remote="r", server="https://images.example", protocol="simplestreams",
                   alias="deb/12"),
        certificate=None, writable=WRITABLE, progress=lambda _: None),
    "update_image": lambda s: s.update_image(FP, WRITABLE),
    "delete_image": lambda s: s.delete_image(FP),
    "create_alias": lambda s: s.create_alias("deb", FP, ""),
    "move_alias": lambda s: s.move_alias("deb", FP),
    "delete_alias": lambda s: s.delete_alias("deb"),
}


@pytest.fixture(autouse=True)
def no_member_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(incus, "accepting", lambda urls, timeout: {u: True for u in urls})


@pytest.mark.parametrize("call", sorted(CALLS))
@settings(max_examples=EXAMPLES or 100, deadline=None, derandomize=not EXAMPLES,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data(), project=st.sampled_from(["default", "p"]))
def test_any_answer_is_a_result_or_the_tools_own_error(call: str, data: st.DataObject,
                                                       project: str) -> None:
    daemon = FuzzDaemon(data.draw)
    transport = Transport(session=daemon, base="http://incus.socket",  # type: ignore[arg-type]
                          display="unix:///fuzz")
    store = IncusStore(TargetSpec(name="t", url="unix:///fuzz", project=project), transport,
                       operation_timeout=0.05)
    with contextlib.suppress(IncusImagesError):
        CALLS[call](store)
