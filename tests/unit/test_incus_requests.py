"""What the Incus adapter sends for apply, against a scripted daemon (no sockets).

- ``patch_server_config`` tells the config's new ETag, computed as the daemon makes
  it, so the next write needs no ``GET /1.0``; a daemon whose ETags are made
  otherwise gets none computed;
- a pull told what the project holds (``present``) lists no images, and after it
  resolved to a held image reads that one image back, not the list.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from reconciler.adapters.http import Transport
from reconciler.adapters.incus import IncusStore
from reconciler.adapters.incus_decode import config_etag, image_from_api
from reconciler.core.inventory import KnownConfig, update_inventory
from reconciler.model.config import TargetSpec
from reconciler.model.observed import RecordedImage
from reconciler.model.plan import PullSource, Writable
from tests.unit.test_incus_pull_put_back import FP, OTHER, OverwritingDaemon, _image, _ok


@dataclass
class ConfigDaemon:
    """``GET``/``PATCH /1.0`` with If-Match, ETags made by ``etag_of``."""

    config: dict[str, str] = field(default_factory=dict)
    cluster: bool = False
    log: list[str] = field(default_factory=list)

    def etag_of(self, config: dict[str, str]) -> str:
        return '"member-' + config_etag(config)[1:] if self.cluster else config_etag(config)

    def request(self, method: str, url: str, *, json: Any = None,
                headers: dict[str, str] | None = None, **_: Any) -> requests.Response:
        self.log.append(f"{method} {urlsplit(url).path}")
        etag = self.etag_of(self.config)
        if method == "GET":
            return _ok({"auth": "trusted", "config": dict(self.config)}, etag=etag)
        if (headers or {}).get("If-Match", etag) != etag:
            return _error(412, "Precondition failed")
        for key, value in json["config"].items():
            if value == "":
                self.config.pop(key, None)
            else:
                self.config[key] = value
        return _ok({})

    def close(self) -> None:
        pass


def _error(status: int, message: str) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp._content = json.dumps({"type": "error", "error_code": status,
                                "error": message}).encode()
    return resp


def store_for(daemon: Any) -> IncusStore:
    transport = Transport(session=daemon, base="http://incus.socket", display="unix:///s")
    return IncusStore(TargetSpec(name="local", url="unix:///scripted"), transport)


def record(n: int) -> Any:
    return lambda inv: inv.model_copy(update={"images": {
        **inv.images, f"{n:064x}": RecordedImage(source=f"r:os/{n}")}})


def test_writes_after_the_first_read_need_no_read() -> None:
    daemon = ConfigDaemon(config={"images.auto_update_interval": "0", "user.x": "<&>"})
    store = store_for(daemon)
    known = KnownConfig()
    for n in range(3):
        update_inventory(store, "o", "default", record(n), known=known)
    assert daemon.log == ["GET /1.0", "PATCH /1.0", "PATCH /1.0", "PATCH /1.0"]
    assert known.value == (daemon.config, daemon.etag_of(daemon.config))


def test_a_daemon_whose_etags_are_made_otherwise_is_read_before_each_write() -> None:
    daemon = ConfigDaemon(cluster=True)
    store = store_for(daemon)
    known = KnownConfig()
    for n in range(2):
        update_inventory(store, "o", "default", record(n), known=known)
    assert daemon.log == ["GET /1.0", "PATCH /1.0", "GET /1.0", "PATCH /1.0"]
    assert len(json.loads(daemon.config["user.incus-images.o.default"])["images"]) == 2


SENT = Writable(auto_update=True, public=True, profiles=(), properties={"team": "web"})
BY_ALIAS = PullSource(remote="r", server="https://images.example", protocol="simplestreams",
                      alias="deb/12")


def test_a_pull_told_what_the_project_holds_lists_nothing() -> None:
    daemon = OverwritingDaemon(lands=FP, images={OTHER: _image(OTHER, [])})
    present = {OTHER: image_from_api(daemon.images[OTHER])}
    store_for(daemon).pull_image(BY_ALIAS, certificate=None, writable=SENT,
                                 progress=lambda _t: None, present=present)
    assert daemon.log == ["POST /1.0/images"]


def test_a_pull_onto_a_held_image_reads_that_image_back_only() -> None:
    daemon = OverwritingDaemon(lands=FP, images={FP: _image(FP, []), OTHER: _image(OTHER, [])})
    present = {fp: image_from_api(img) for fp, img in daemon.images.items()}
    before = dict(daemon.images[FP])
    store_for(daemon).pull_image(BY_ALIAS, certificate=None, writable=SENT,
                                 progress=lambda _t: None, present=present)
    assert "GET /1.0/images" not in daemon.log  # no list
    assert daemon.log[:2] == ["POST /1.0/images", f"GET /1.0/images/{FP}"]
    assert (daemon.images[FP]["public"], daemon.images[FP]["profiles"]) == (
        before["public"], before["profiles"])  # put back
