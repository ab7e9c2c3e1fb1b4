"""The Incus adapter puts back what the daemon's pull overwrote (Incus 6.0.4), against a
scripted daemon (no sockets).

Checked on the real daemon (tests/contract holds it there too): a pull of a fingerprint
already in the project whose image has aliases fails with "Alias already exists: <its
first alias>", and before failing it has rewritten that image's ``public``,
``auto_update``, ``profiles`` and ``properties`` (merged) with the request's.  A pull by
alias that the daemon's older index resolves to a present image does the same, and
succeeds.  ``IncusStore.pull_image`` leaves such an image as it was.
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
from reconciler.errors import OperationFailed
from reconciler.model.config import TargetSpec
from reconciler.model.plan import PullSource, Writable

FP = "b" * 64
OTHER = "c" * 64


def _image(fp: str, aliases: list[str]) -> dict[str, Any]:
    """An image as ``GET /1.0/images/<fp>`` shows it (a real 6.0.4 answer's shape)."""
    return {
        "fingerprint": fp, "filename": "", "size": 1024, "type": "container",
        "architecture": "x86_64", "public": False, "auto_update": False, "cached": False,
        "properties": {"os": "Debian", "team": "ops"}, "profiles": ["default"],
        "aliases": [{"name": n, "description": ""} for n in aliases],
        "update_source": {"server": "https://images.example", "protocol": "simplestreams",
                          "alias": "deb/12", "certificate": "", "image_type": ""},
        "created_at": "2026-01-01T00:00:00Z", "uploaded_at": "2026-01-02T00:00:00Z",
        "last_used_at": "0001-01-01T00:00:00Z", "expires_at": "1970-01-01T00:00:00Z",
        "project": "default",
    }


def _ok(metadata: Any, status: int = 200, etag: str = "") -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp._content = json.dumps({"type": "sync", "status": "Success", "status_code": 200,
                                "metadata": metadata}).encode()
    resp.headers["Content-Type"] = "application/json"
    if etag:
        resp.headers["ETag"] = etag
    return resp


@dataclass
class OverwritingDaemon:
    """Incus 6.0.4's image pull: it lands ``lands`` and rewrites it if present."""

    lands: str
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    def request(self, method: str, url: str, *, json: Any = None, **_: Any
                ) -> requests.Response:
        path = urlsplit(url).path
        self.log.append(f"{method} {path}")
        if method == "GET" and path == "/1.0/images":
            return _ok(list(self.images.values()))
        if method == "POST" and path == "/1.0/images":
            return self._pull(json)
        fp = path.rsplit("/", 1)[-1]
        if method == "GET" and fp in self.images:
            return _ok(self.images[fp], etag=f"etag-{fp[:4]}")
        if method == "PUT" and fp in self.images:
            self.images[fp] = {**self.images[fp], **json}
            return _ok({})
        raise AssertionError(f"unexpected request {method} {path}")

    def _pull(self, body: dict[str, Any]) -> requests.Response:
        op: dict[str, Any] = {"id": "op", "class": "task", "status": "Success",
                              "status_code": 200, "metadata": {"fingerprint": self.lands},
                              "err": ""}
        present = self.images.get(self.lands)
        if present is None:
            self.images[self.lands] = _image(self.lands, [])
        else:
            self.images[self.lands] = {
                **present, "public": body["public"], "auto_update": body["auto_update"],
                "profiles": body["profiles"],
                "properties": {**present["properties"], **body["properties"]}}
            if present["aliases"] and "fingerprint" in body["source"]:
                op = {**op, "status": "Failure", "status_code": 400, "metadata": None,
                      "err": f"Alias already exists: {present['aliases'][0]['name']}"}
        resp = requests.Response()
        resp.status_code = 202
        resp._content = json.dumps({"type": "async", "status": "Operation created",
                                    "status_code": 100, "operation": "/1.0/operations/op",
                                    "metadata": op}).encode()
        return resp

    def close(self) -> None:
        pass


def store_for(daemon: OverwritingDaemon) -> IncusStore:
    transport = Transport(session=daemon, base="http://incus.socket",  # type: ignore[arg-type]
                          display="unix:///scripted")
    return IncusStore(TargetSpec(name="local", url="unix:///scripted"), transport)


SENT = Writable(auto_update=True, public=True, profiles=(), properties={"team": "web"})
BY_ALIAS = PullSource(remote="r", server="https://images.example", protocol="simplestreams",
                      alias="deb/12")
BY_FINGERPRINT = BY_ALIAS.model_copy(update={"alias": None, "fingerprint": FP})


def _fields(image: dict[str, Any]) -> tuple[object, ...]:
    return (image["public"], image["auto_update"], image["profiles"], image["properties"])


def test_a_failed_pull_of_a_present_aliased_image_gives_its_fields_back() -> None:
    daemon = OverwritingDaemon(lands=FP, images={FP: _image(FP, ["by-hand"])})
    before = _fields(daemon.images[FP])
    with pytest.raises(OperationFailed, match="Alias already exists: by-hand"):
        store_for(daemon).pull_image(BY_FINGERPRINT, certificate=None, writable=SENT,
                                     progress=lambda _t: None)
    assert _fields(daemon.images[FP]) == before
    assert f"PUT /1.0/images/{FP}" in daemon.log


def test_a_stale_pull_by_alias_onto_a_present_image_gives_its_fields_back() -> None:
    daemon = OverwritingDaemon(lands=FP, images={FP: _image(FP, []), OTHER: _image(OTHER, [])})
    before = {fp: _fields(img) for fp, img in daemon.images.items()}
    landed = store_for(daemon).pull_image(BY_ALIAS, certificate=None, writable=SENT,
                                          progress=lambda _t: None)
    assert landed == FP
    assert {fp: _fields(img) for fp, img in daemon.images.items()} == before
    assert f"PUT /1.0/images/{OTHER}" not in daemon.log  # untouched: not written


def test_an_image_someone_else_changed_meanwhile_is_left_alone() -> None:
    """Only an image that now carries exactly what the request sent is put back."""
    daemon = OverwritingDaemon(lands=OTHER, images={FP: _image(FP, [])})
    daemon.images[FP]["public"] = True  # changed by hand after the listing: not ours
    store = store_for(daemon)
    real_pull = daemon._pull

    def pull_after_a_hand_edit(body: dict[str, Any]) -> requests.Response:
        daemon.images[FP] = {**daemon.images[FP], "profiles": []}
        return real_pull(body)

    daemon._pull = pull_after_a_hand_edit  # type: ignore[method-assign]
    store.pull_image(BY_ALIAS, certificate=None, writable=SENT, progress=lambda _t: None)
    assert daemon.images[FP]["profiles"] == []
    assert not any(r.startswith("PUT") for r in daemon.log)


def test_a_pull_into_an_empty_project_lists_the_images_once() -> None:
    daemon = OverwritingDaemon(lands=FP)
    store_for(daemon).pull_image(BY_ALIAS, certificate=None, writable=SENT,
                                 progress=lambda _t: None)
    assert daemon.log == ["GET /1.0/images", "POST /1.0/images"]
