"""Cluster member health (issue 9 items 1-4) against in-memory stores.

- ``core.cluster``: which changes apply refuses while a member is unhealthy (and
  which it still applies), the ``cluster.member_offline`` and
  ``cluster.patch_revert_bug`` warnings;
- the plan's text, markdown and JSON and ``status`` show them;
- the executor skips refused changes (``refused``), runs the safe ones, and the apply
  fails; ``--allow-degraded-cluster`` refuses nothing;
- nothing is written to a target before it was observed (no quorum: no lease);
- "Failed syncing image between servers" fails the download: no upload, marker kept.
"""

from __future__ import annotations

import io
import json
import socket
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from reconciler.adapters.http import Transport
from reconciler.adapters.incus import IncusStore, _sync_failed
from reconciler.adapters.reach import accepting
from reconciler.apply.executor import apply_plan
from reconciler.apply.lease import LEASE_KEY
from reconciler.cli import main
from reconciler.core.cluster import (
    MEMBER_OFFLINE,
    PATCH_REVERT_BUG,
    cluster_warnings,
    refusals,
)
from reconciler.core.planner import make_plan
from reconciler.core.status import shape
from reconciler.errors import NoQuorum, OperationFailed, SyncFailed
from reconciler.model.config import Config, TargetSpec
from reconciler.model.observed import ClusterMember, TargetState
from reconciler.model.plan import Action, Change, Plan, PullSource, Writable
from reconciler.model.remote import RemoteCatalog
from reconciler.model.result import ApplyResult, Status
from reconciler.render import render_plan
from reconciler.render import status as status_render
from tests.support.builders import NOW, build, catalog, config, entry
from tests.support.fakes import FakeReader, FakeStore
from tests.support.services import Connections, Readers, services

URL = "https://10.0.0.{}:8443"
HEALTHY = tuple(ClusterMember(name=f"m{i}", url=URL.format(i), reachable=True)
                for i in (1, 2, 3))
M3_DOWN = (*HEALTHY[:2], HEALTHY[2].model_copy(update={"reachable": False}))
M3_OFFLINE = (*HEALTHY[:2], HEALTHY[2].model_copy(
    update={"status": "Offline", "message": "No heartbeat for 21s"}))
FP_A, FP_B, FP_C = ("a" * 64, "b" * 64, "c" * 64)


def state(members: tuple[ClusterMember, ...] = M3_DOWN, version: str = "6.0.6") -> TargetState:
    return TargetState(target="c", project="default", effective_project="default",
                       host_architecture="x86_64", server_version=version,
                       clustered=bool(members), members=members)


def ch(action: Action, **kw: object) -> Change:
    return Change.model_validate({"action": action, "target": "c", "project": "default",
                                  "reason": "r", **kw})


# -- core.cluster.refusals ----------------------------------------------------------------

CHANGES = (
    ch(Action.SERVER_UPDATE, fields={}),
    ch(Action.IMAGE_DOWNLOAD, fingerprint=FP_B),
    ch(Action.IMAGE_ADOPT, fingerprint=FP_C),
    ch(Action.IMAGE_UPDATE, fingerprint=FP_A),   # an image already there: safe
    ch(Action.IMAGE_UPDATE, fingerprint=FP_B),   # the refused download's fields
    ch(Action.ALIAS_CREATE, alias="new", to=FP_B),
    ch(Action.ALIAS_MOVE, alias="deb", to=FP_B, **{"from": FP_A}),
    ch(Action.ALIAS_MOVE, alias="other", to=FP_A, **{"from": FP_C}),  # onto a present image
    ch(Action.ALIAS_CREATE, alias="adopted", to=FP_C),
    ch(Action.ALIAS_UPDATE, alias="deb"),
    ch(Action.ALIAS_DELETE, alias="gone"),
    ch(Action.IMAGE_DELETE, fingerprint=FP_A),
)


@pytest.mark.parametrize("members", [M3_DOWN, M3_OFFLINE], ids=["unreachable", "offline"])
def test_a_degraded_cluster_refuses_downloads_adoptions_deletes_and_what_needs_them(
    members: tuple[ClusterMember, ...],
) -> None:
    refused = refusals(CHANGES, state(members))
    assert sorted(refused) == [1, 2, 4, 5, 6, 8, 11]
    assert "member m3" in refused[1] and "--allow-degraded-cluster" in refused[1]
    assert refused[5].startswith("refused because it needs image bbbbbbbbbbbb, whose "
                                 "image.download was refused while the cluster is degraded "
                                 "(member m3")
    assert "image.adopt was refused" in refused[8]


def test_nothing_is_refused_when_healthy_standalone_or_allowed() -> None:
    assert refusals(CHANGES, state(HEALTHY)) == {}
    assert refusals(CHANGES, state(())) == {}
    assert refusals(CHANGES, state(M3_DOWN), allow_degraded=True) == {}


def test_a_refresh_is_refused_and_so_is_an_alias_onto_its_new_build() -> None:
    changes = (ch(Action.IMAGE_REFRESH, fingerprint=FP_A, to=FP_B),
               ch(Action.ALIAS_MOVE, alias="deb", to=FP_B, **{"from": FP_A}))
    assert sorted(refusals(changes, state())) == [0, 1]


# -- warnings -----------------------------------------------------------------------------

def test_member_offline_warnings_name_each_unhealthy_member() -> None:
    down = cluster_warnings(state(M3_DOWN))
    assert [(w.code, w.target, w.image) for w in down] == [(MEMBER_OFFLINE, "c", "")]
    assert down[0].message.startswith(
        "member m3 does not accept connections at https://10.0.0.3:8443; apply refuses")
    assert "new images land on the healthy members only" in down[0].message
    offline = cluster_warnings(state(M3_OFFLINE))
    assert offline[0].message.startswith("member m3 is Offline: No heartbeat for 21s;")
    assert cluster_warnings(state(HEALTHY)) == ()


@pytest.mark.parametrize(("version", "clustered", "warned"), [
    ("6.0.4", True, True), ("6.0.5", True, True), ("6.0.6", True, False),
    ("6.0.4", False, False), ("6.1", True, False),
])
def test_patch_revert_bug_on_clustered_6_0_4_and_6_0_5(version: str, clustered: bool,
                                                        warned: bool) -> None:
    found = cluster_warnings(state(HEALTHY if clustered else (), version))
    assert [w.code for w in found] == ([PATCH_REVERT_BUG] if warned else [])
    if warned:
        assert found[0].message == (
            f"Incus {version} on a cluster: a failed server-config write can erase member "
            "settings (core.https_address, cluster.https_address); fixed in 6.0.6")


# -- the plan and apply on a FakeStore with members ------------------------------------------

def converged() -> tuple[Config, FakeStore, RemoteCatalog]:
    """deb/1 serial 1 (alias deb) and alp/1 applied; deb/1 serial 2 then published and
    alp/1 declared with an alias: a download, an alias move, an alias create, a delete."""
    b1, a1, b2 = build("deb/1", 1), build("alp/1", 1), build("deb/1", 2)
    first = catalog(b1, a1)
    store = FakeStore("local", universe={"r": first})
    store.members = HEALTHY
    cfg = config(entry("r:deb/1", "deb"), entry("r:alp/1"))
    assert apply(cfg, store, first, plan_for(cfg, store, first)).ok
    newer = catalog(b1, a1, b2)
    store.universe = {newer.url: newer}
    return config(entry("r:deb/1", "deb"), entry("r:alp/1", "alp")), store, newer


def plan_for(cfg: Config, store: FakeStore, cat: RemoteCatalog) -> Plan:
    return make_plan(cfg, {"r": cat}, {store.target: store.observe()}, now=NOW)


def apply(cfg: Config, store: FakeStore, cat: RemoteCatalog, plan: Plan, *,
          allow_degraded: bool = False) -> ApplyResult:
    return apply_plan(plan, stores={store.target: store}, reader=FakeReader({"r": cat}),
                      remotes=cfg.remotes, allow_degraded=allow_degraded)


def test_the_plan_shows_member_health_in_text_markdown_and_json() -> None:
    cfg, store, cat = converged()
    store.members = M3_DOWN
    plan = plan_for(cfg, store, cat)
    text = render_plan(plan, "text")
    assert ("  ! local: member m3 does not accept connections at https://10.0.0.3:8443; "
            "apply refuses") in text
    assert "[cluster.member_offline]" in text
    markdown = render_plan(plan, "markdown")
    assert "- `cluster.member_offline` on `local`: member m3 does not accept" in markdown
    warnings = json.loads(render_plan(plan, "json"))["warnings"]
    assert [(w["code"], w["target"], w["image"]) for w in warnings] == [
        ("cluster.member_offline", "local", "")]


def test_apply_on_a_degraded_cluster_runs_only_the_safe_changes_and_fails() -> None:
    cfg, store, cat = converged()
    before_images = set(store.images)
    store.members = M3_DOWN
    plan = plan_for(cfg, store, cat)
    assert [c.action.value for c in plan.changes] == [
        "image.download", "alias.create", "alias.move", "image.delete"]
    store.calls.clear()
    result = apply(cfg, store, cat, plan)
    assert not result.ok and not result.failed
    assert [(o.change.action.value, o.status.value, o.refused) for o in result.outcomes] == [
        ("image.download", "skipped", True), ("alias.create", "done", None),
        ("alias.move", "skipped", True), ("image.delete", "skipped", True)]
    assert set(store.images) == before_images  # nothing landed, nothing deleted
    assert store.aliases["deb"][0] in before_images  # not moved
    assert store.aliases["alp"][0] in before_images  # the safe change was made
    assert not [c for c in store.calls if c.startswith(("pull", "upload"))]


def test_allow_degraded_cluster_applies_everything() -> None:
    cfg, store, cat = converged()
    store.members = M3_DOWN
    result = apply(cfg, store, cat, plan_for(cfg, store, cat), allow_degraded=True)
    assert result.ok
    assert [o.status for o in result.outcomes] == [Status.DONE] * 4


class SyncFailingStore(FakeStore):
    """A pull lands the image on the importing member, then fails to sync it."""

    def pull_image(self, pull: PullSource, *, certificate: str | None, writable: Writable,
                   progress: object, **known: Any) -> str:
        super().pull_image(pull, certificate=certificate, writable=writable,
                           progress=progress, **known)
        raise SyncFailed(self.target, "pull: Failed syncing image between servers: Failed "
                         'to copy image to "m3": connection refused')


def test_a_failed_sync_fails_the_download_and_never_uploads() -> None:
    b1 = build("deb/1", 1)
    cat = catalog(b1)
    store = SyncFailingStore("local", universe={"r": cat})
    store.members = HEALTHY
    cfg = config(entry("r:deb/1", "deb"))
    result = apply(cfg, store, cat, plan_for(cfg, store, cat))
    assert [(o.change.action.value, o.status.value) for o in result.outcomes] == [
        ("image.download", "failed"), ("alias.create", "skipped")]
    assert "Failed syncing image between servers" in result.outcomes[0].message
    assert not [c for c in store.calls if c.startswith("upload")]
    assert "deb" not in store.aliases
    # its in-flight marker stays: the record the daemon left is settled by a later run
    assert '"pending"' in store.config["user.incus-images.incus-images.default"]


# -- the CLI: no write before an observation; exit 1 with the refusals -----------------------

HEAD = """\
version: 1
remotes:
  r:
    url: https://images.test
targets:
  local: {}
images:
  - source: r:deb/1
    aliases: [deb]
"""


class CountingStore(FakeStore):
    """Counts every server-config write; ``no_quorum`` makes observe fail as the adapter
    does for a cluster without quorum."""

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.writes: list[dict[str, str]] = []
        self.no_quorum = False

    def observe(self) -> TargetState:
        if self.no_quorum:
            raise NoQuorum(self.target, "the cluster cannot list its members (HTTP 503): it "
                           "has no quorum or is failing; nothing was written to it")
        return super().observe()

    def patch_server_config(self, changes: dict[str, str], etag: str) -> None:
        self.writes.append(dict(changes))
        super().patch_server_config(changes, etag)


def cli(tmp_path: Path, store: FakeStore, cat: RemoteCatalog, *argv: str
        ) -> tuple[int, str, str]:
    (tmp_path / "images.yaml").write_text(HEAD, encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    svc = services(Connections({"local": store}), Readers(FakeReader({"r": cat})),
                   environ={"INCUS_SOCKET": "/run/test.socket"})
    with redirect_stdout(out), redirect_stderr(err):
        code = main([*argv, "-f", str(tmp_path / "images.yaml")], services=svc)
    return code, out.getvalue(), err.getvalue()


def test_no_quorum_is_one_line_and_no_write_at_all(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cat = catalog(build("deb/1", 1))
    store = CountingStore("local", universe={"r": cat})
    store.no_quorum = True
    code, _, err = cli(tmp_path, store, cat, "apply", "--yes")
    assert code == 1
    assert err == ("incus-images: error: target 'local': the cluster cannot list its members "
                   "(HTTP 503): it has no quorum or is failing; nothing was written to it\n")
    assert store.writes == [] and LEASE_KEY not in store.config


def test_apply_observes_before_it_takes_the_lease(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cat = catalog(build("deb/1", 1))
    store = CountingStore("local", universe={"r": cat})
    order: list[str] = []
    observe, patch = store.observe, store.patch_server_config

    def observing() -> TargetState:
        order.append("observe")
        return observe()

    def patching(changes: dict[str, str], etag: str) -> None:
        order.append("write")
        patch(changes, etag)

    store.observe = observing  # type: ignore[method-assign]
    store.patch_server_config = patching  # type: ignore[method-assign]
    assert cli(tmp_path, store, cat, "apply", "--yes")[0] == 0
    assert order[0] == "observe" and "write" in order


def test_apply_on_a_degraded_cluster_exits_1_naming_each_refused_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    cat = catalog(build("deb/1", 1))
    store = CountingStore("local", universe={"r": cat})
    store.members = M3_DOWN
    code, out, err = cli(tmp_path, store, cat, "apply", "--yes")
    assert code == 1
    assert "[cluster.member_offline]" in out
    lines = err.splitlines()
    prefix = "incus-images: error: local: image.download r:deb/1 "
    assert any(line.startswith(prefix) for line in lines)
    assert any("skipped: refused while the cluster is degraded (member m3 does not accept "
               "connections at https://10.0.0.3:8443)" in line for line in lines)
    assert store.images == {} and store.aliases == {}
    code, _, err = cli(tmp_path, store, cat, "apply", "--yes", "--allow-degraded-cluster")
    assert code == 0, err
    assert list(store.aliases) == ["deb"]


# -- status --------------------------------------------------------------------------------

def test_status_lists_members_and_flags_the_unhealthy_ones() -> None:
    cfg = config()
    report = shape(cfg, {"local": state(M3_OFFLINE).model_copy(update={"target": "local"})},
                   None, None)
    data = report.to_json_dict()["targets"]["local"]
    assert data["members"] == [
        {"name": "m1", "status": "Online", "url": URL.format(1), "healthy": True,
         "problem": None},
        {"name": "m2", "status": "Online", "url": URL.format(2), "healthy": True,
         "problem": None},
        {"name": "m3", "status": "Offline", "url": URL.format(3), "healthy": False,
         "problem": "member m3 is Offline: No heartbeat for 21s"}]
    text = status_render.render_text(report)
    assert text.splitlines()[1:3] == [
        "  members: m1 (Online), m2 (Online), m3 (Offline, unhealthy)",
        "  ! member m3 is Offline: No heartbeat for 21s [cluster.member_offline]"]
    standalone = shape(cfg, {"local": state(()).model_copy(update={"target": "local"})},
                       None, None)
    assert "members" not in standalone.to_json_dict()["targets"]["local"]
    assert "members" not in status_render.render_text(standalone)


# -- the adapter's pieces: the connection check, the sync failure ------------------------------

def test_accepting_tells_listening_from_refused_addresses_at_once() -> None:
    with socket.socket() as listening, socket.socket() as closed:
        listening.bind(("127.0.0.1", 0))
        listening.listen(1)
        closed.bind(("127.0.0.1", 0))  # bound, not listening: refused
        up = f"https://127.0.0.1:{listening.getsockname()[1]}"
        down = f"https://127.0.0.1:{closed.getsockname()[1]}"
        assert accepting([up, down, "unix:///run/x.socket", up], 1.0) == {
            up: True, down: False, "unix:///run/x.socket": None}


def test_a_failed_sync_is_sync_failed_and_other_failures_are_not() -> None:
    sync = _sync_failed(OperationFailed("c", "pull of x: Failed syncing image between servers: "
                                        'Failed to copy image to "m3": connection refused'))
    assert isinstance(sync, SyncFailed)
    assert str(sync).startswith("target 'c': pull of x: Failed syncing image between servers")
    assert "stays on the importing member only" in str(sync)
    other = OperationFailed("c", "pull of x: not found")
    assert _sync_failed(other) is other


class SyncFailingDaemon:
    """A scripted daemon (no sockets) whose import fails to reach another member, and
    which then holds the image record on the importing member, as Incus 6.0.4 does."""

    ERROR = ('Failed syncing image between servers: Failed to copy image to "m3": '
             "connection refused")

    def __init__(self) -> None:
        self.imported = False
        self.log: list[str] = []

    def request(self, method: str, url: str, **_: object) -> requests.Response:
        path = urlsplit(url).path
        self.log.append(f"{method} {path}")
        if method == "GET" and path == f"/1.0/images/{FP_A}":
            if not self.imported:
                return _answer(404, {"type": "error", "error_code": 404, "error": "not found"})
            return _answer(200, {"type": "sync", "status_code": 200, "metadata": {
                "fingerprint": FP_A, "type": "container", "architecture": "x86_64",
                "properties": {}, "aliases": []}})
        if method == "POST" and path == "/1.0/images":
            self.imported = True
            return _answer(202, {"type": "async", "status_code": 100,
                                 "operation": "/1.0/operations/op", "metadata": {
                                     "id": "op", "status": "Failure", "status_code": 400,
                                     "err": self.ERROR}})
        raise AssertionError(f"unexpected request {method} {path}")

    def close(self) -> None:
        pass


def _answer(status: int, body: dict[str, object]) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp._content = json.dumps(body).encode()
    resp.headers["Content-Type"] = "application/json"
    return resp


def test_an_upload_that_failed_to_sync_is_not_called_done_although_its_record_is_there() -> None:
    daemon = SyncFailingDaemon()
    transport = Transport(session=daemon, base="http://incus.socket",  # type: ignore[arg-type]
                          display="unix:///scripted")
    store = IncusStore(TargetSpec(name="c", url="unix:///scripted"), transport)
    with pytest.raises(SyncFailed, match="Failed syncing image between servers"):
        store.upload_image([("incus.tar.xz", iter([b"x"]))], fingerprint=FP_A,
                           type_="container", progress=lambda text: None)
    assert daemon.imported and daemon.log[-1] == "POST /1.0/images"


class MembersDaemon:
    """A scripted clustered daemon: ``GET /1.0`` and the member list, nothing else."""

    def __init__(self, urls: list[str], list_status: int = 200) -> None:
        self.urls = urls
        self.list_status = list_status
        self.log: list[str] = []

    def request(self, method: str, url: str, **_: object) -> requests.Response:
        path = urlsplit(url).path
        self.log.append(f"{method} {path}")
        if (method, path) == ("GET", "/1.0"):
            return _answer(200, {"type": "sync", "status_code": 200, "metadata": {
                "auth": "trusted", "config": {}, "environment": {
                    "server_clustered": True, "server_name": "m1",
                    "server_version": "6.0.4"}}})
        if (method, path) == ("GET", "/1.0/cluster/members") and self.list_status != 200:
            return _answer(self.list_status, {"type": "error", "error_code": 503,
                                              "error": "Failed to begin transaction"})
        if (method, path) == ("GET", "/1.0/cluster/members"):
            return _answer(200, {"type": "sync", "status_code": 200, "metadata": [
                {"server_name": f"m{i}", "url": u, "status": "Online", "message": "Fully "
                 "operational", "roles": []} for i, u in enumerate(self.urls, 1)]})
        raise AssertionError(f"unexpected request {method} {path}")

    def close(self) -> None:
        pass


def _members_store(daemon: MembersDaemon) -> IncusStore:
    transport = Transport(session=daemon, base="http://incus.socket",  # type: ignore[arg-type]
                          display="unix:///scripted")
    return IncusStore(TargetSpec(name="c", url="unix:///scripted"), transport)


def test_a_majority_of_members_refusing_connections_is_no_quorum_before_any_other_read(
) -> None:
    with socket.socket() as up, socket.socket() as d2, socket.socket() as d3:
        up.bind(("127.0.0.1", 0))
        up.listen(1)
        for s in (d2, d3):
            s.bind(("127.0.0.1", 0))  # bound, not listening: refused
        urls = [f"https://127.0.0.1:{s.getsockname()[1]}" for s in (up, d2, d3)]
        daemon = MembersDaemon(urls)
        with pytest.raises(NoQuorum) as caught:
            _members_store(daemon).observe()
    assert str(caught.value) == (
        f"target 'c': the cluster has no quorum: 2 of 3 members do not accept connections "
        f"(m2 at {urls[1]}, m3 at {urls[2]}); nothing was written to it")
    assert daemon.log == ["GET /1.0", "GET /1.0/cluster/members"]


def test_a_failing_member_list_is_no_quorum() -> None:
    daemon = MembersDaemon([], list_status=503)
    with pytest.raises(NoQuorum, match=r"cannot list its members .*Failed to begin transaction"):
        _members_store(daemon).observe()
