"""``--verify`` (issue 9 item 5): broken copies found through every member, reported with
the member, repaired by apply only while every member is healthy; without ``--verify``
no per-image request is sent.

Whole commands run through ``reconciler.cli.main`` over :class:`FakeStore` s, which
answer ``verify_copies`` as the adapter does (``FakeStore.broken`` marks a copy broken
on a member) and record every export they were asked for in ``calls``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.model.observed import ClusterMember
from tests.support.builders import build, catalog
from tests.support.fakes import FakeReader, FakeStore
from tests.support.services import Connections, Readers, services

REMOTE = "https://images.test"
DEB = build("debian/12", 0)
ALP = build("alpine/3.20", 5)
FILE = f"""\
version: 1
remotes:
  images:
    url: {REMOTE}
targets:
  c:
    url: unix:///run/c/incus/unix.socket
images:
  - source: images:debian/12
    aliases: [deb]
  - source: images:alpine/3.20
"""


def members(*down: str) -> tuple[ClusterMember, ...]:
    return tuple(ClusterMember(name=n, url=f"https://127.0.0.{i}:8443",
                               status="Offline" if n in down else "Online")
                 for i, n in enumerate(("m1", "m2", "m3"), start=1))


class World:
    """One target ``c``, converged on FILE (both images, alias ``deb``)."""

    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.root = root
        self.capsys = capsys
        cat = catalog(DEB, ALP, name="images", url=REMOTE)
        self.reader = FakeReader({"images": cat})
        self.store = FakeStore("c", universe={"images": cat})
        (root / "images.yaml").write_text(FILE, encoding="utf-8")
        code, _, err = self.run("apply", "--yes")
        assert code == 0, err
        self.store.calls.clear()

    def run(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        svc = services(Connections({"c": self.store}), Readers(self.reader))
        code = main(list(argv), services=svc)
        out, err = self.capsys.readouterr()
        return code, out, err

    def exports(self) -> list[str]:
        return [c for c in self.store.calls if c.startswith("export")]

    def plan_json(self, *flags: str) -> dict[str, object]:
        code, out, err = self.run("plan", "--format", "json", *flags)
        assert code == 0, err
        data: dict[str, object] = json.loads(out)
        return data


@pytest.fixture
def w(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
      capsys: pytest.CaptureFixture[str]) -> World:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    return World(tmp_path, capsys)


def _changes(plan: dict[str, object]) -> list[tuple[str, str]]:
    changes = plan["changes"]
    assert isinstance(changes, list)
    return [(c["action"], c.get("fingerprint") or c.get("alias")) for c in changes]


def _warnings(plan: dict[str, object]) -> list[dict[str, str]]:
    found = plan["warnings"]
    assert isinstance(found, list)
    return [x for x in found if x["code"] == "cluster.broken_copy"]


# -- no per-image request without --verify -------------------------------------------------

@pytest.mark.parametrize("command", [["plan"], ["status", "--offline"], ["apply", "--yes"]])
def test_without_verify_no_export_is_sent(w: World, command: list[str]) -> None:
    w.store.members = members()
    w.store.broken[DEB.fingerprint] = {"m2"}
    code, out, err = w.run(*command)
    assert code == 0, err
    assert w.exports() == []
    assert "broken" not in out


def test_verify_exports_each_managed_image_once_through_each_member(w: World) -> None:
    w.store.members = members()
    plan = w.plan_json("--verify")
    assert plan["changes"] == [] and _warnings(plan) == []
    assert sorted(w.exports()) == sorted(
        f"export {fp} via {m}" for fp in (DEB.fingerprint, ALP.fingerprint)
        for m in ("m1", "m2", "m3"))


def test_verify_checks_only_this_owners_images(w: World) -> None:
    other = build("other/1", 1)
    w.store.images[other.fingerprint] = w.store.images[DEB.fingerprint].model_copy(
        update={"fingerprint": other.fingerprint})
    w.store.calls.clear()
    w.plan_json("--verify")
    assert not any(other.fingerprint in c for c in w.exports())
    assert len(w.exports()) == 2


# -- found and repaired ----------------------------------------------------------------------

def test_a_broken_copy_is_repaired_when_every_member_is_healthy(w: World) -> None:
    w.store.members = members()
    w.store.broken[DEB.fingerprint] = {"m2"}
    plan = w.plan_json("--verify")
    assert _changes(plan) == [("image.download", DEB.fingerprint), ("alias.create", "deb")]
    download = plan["changes"][0]  # type: ignore[index]
    assert download["reason"] == "broken copy on member m2: deleted and downloaded again"
    assert download["replace_cached"] is True
    [warning] = _warnings(plan)
    assert warning["target"] == "c" and warning["image"] == "images:debian/12"
    assert "member m2" in warning["message"]
    assert "deletes it and downloads it again" in warning["message"]


def test_apply_verify_repairs_then_plan_verify_is_empty(w: World) -> None:
    w.store.members = members()
    w.store.broken[DEB.fingerprint] = {"m2"}
    code, out, err = w.run("apply", "--yes", "--verify")
    assert code == 0, err
    mutations = [c for c in w.store.calls
                 if not c.startswith(("export", "observe", "config", "patch config"))]
    assert mutations[:2] == [f"delete {DEB.fingerprint}", "pull debian/12"]
    assert "alias create deb" in mutations
    assert "deletes the broken copy first" in out
    assert w.store.aliases["deb"][0] == DEB.fingerprint
    code, out, _ = w.run("plan", "--verify")
    assert code == 0 and out.startswith("No changes"), out


def test_a_broken_copy_is_only_warned_about_while_a_member_is_unhealthy(w: World) -> None:
    w.store.members = members("m3")
    w.store.broken[DEB.fingerprint] = {"m2"}
    plan = w.plan_json("--verify")
    assert plan["changes"] == []
    [warning] = _warnings(plan)
    assert "member m2" in warning["message"] and "m3" in warning["message"]
    assert "not repaired" in warning["message"]
    assert not any("via m3" in c for c in w.exports())  # an Offline member is not contacted
    code, _, err = w.run("apply", "--yes", "--verify")
    assert code == 0, err
    assert not any(c.startswith(("delete", "pull")) for c in w.store.calls)


def test_a_broken_copy_on_a_standalone_daemon_is_repaired(w: World) -> None:
    w.store.broken[ALP.fingerprint] = {""}
    plan = w.plan_json("--verify")
    assert _changes(plan) == [("image.download", ALP.fingerprint)]
    [warning] = _warnings(plan)
    assert "through the daemon" in warning["message"]
    assert w.exports() == [f"export {fp} via c" for fp in sorted(
        (DEB.fingerprint, ALP.fingerprint))]


def test_plan_text_and_markdown_name_the_member(w: World) -> None:
    w.store.members = members()
    w.store.broken[DEB.fingerprint] = {"m2"}
    for fmt in ("text", "markdown"):
        code, out, err = w.run("plan", "--verify", "--format", fmt)
        assert code == 0, err
        assert "cluster.broken_copy" in out and "member m2" in out, out
        assert "broken copy on member m2: deleted and downloaded again" in out


def test_members_it_cannot_reach_are_a_note(w: World) -> None:
    w.store.members = members()
    w.store.reaches_members = False
    w.store.broken[DEB.fingerprint] = {"m2"}
    code, out, err = w.run("plan", "--verify")
    assert code == 0, err
    assert "could not check member m2: no client certificate" in out
    assert "could not check member m3" in out
    assert "could not check member m1" not in out  # the contacted member is checked
    assert "image.download" not in out  # the broken copy on m2 was not seen


def test_a_saved_plan_is_not_verified_again(w: World, tmp_path: Path) -> None:
    code, _, err = w.run("plan", "--out", str(tmp_path / "p.json"))
    assert code == 0, err
    code, _, err = w.run("apply", "--verify", str(tmp_path / "p.json"))
    assert code == 1 and "--verify cannot be used with a saved plan" in err


# -- status ----------------------------------------------------------------------------------

def test_status_verify_reports_each_broken_copy_with_its_member(w: World) -> None:
    w.store.members = members()
    w.store.broken[DEB.fingerprint] = {"m2", "m3"}
    code, out, err = w.run("status", "--offline", "--verify", "--format", "json")
    assert code == 0, err
    target = json.loads(out)["targets"]["c"]
    assert [(b["fingerprint"], b["member"]) for b in target["broken_copies"]] == [
        (DEB.fingerprint, "m2"), (DEB.fingerprint, "m3")]
    assert target["unchecked_members"] == {}
    code, out, err = w.run("status", "--offline", "--verify")
    assert code == 0, err
    assert "broken copy on member m2: no such file or directory" in out
    assert "--verify: 2 broken copies" in out
    assert not any(c.startswith(("delete", "pull")) for c in w.store.calls)


def test_status_without_verify_has_no_broken_copies_key(w: World) -> None:
    w.store.members = members()
    w.store.broken[DEB.fingerprint] = {"m2"}
    code, out, _ = w.run("status", "--offline", "--format", "json")
    assert code == 0
    assert "broken_copies" not in json.loads(out)["targets"]["c"]
    assert w.exports() == []


def test_status_verify_notes_the_members_it_could_not_check(w: World) -> None:
    w.store.members = members("m3")
    code, out, err = w.run("status", "--offline", "--verify", "--format", "json")
    assert code == 0
    assert json.loads(out)["targets"]["c"]["unchecked_members"] == {"m3": "it is Offline"}
    assert "--verify could not check member m3: it is Offline" in err



# -- the adapter's routes to members ---------------------------------------------------------

def _routes(spec_certs: bool, state_members: tuple[ClusterMember, ...]) -> dict[str, str]:
    import requests

    from reconciler.adapters.http import Transport
    from reconciler.adapters.incus_verify import routes_of
    from reconciler.model.config import TargetSpec
    from reconciler.model.observed import TargetState

    spec = TargetSpec(name="c", url="https://127.0.0.1:8443",
                      client_cert="CERT" if spec_certs else None,
                      client_key="KEY" if spec_certs else None)
    own = Transport(requests.Session(), "https://127.0.0.1:8443", spec.url)
    state = TargetState(target="c", project="default", effective_project="default",
                        host_architecture="x86_64", clustered=bool(state_members),
                        members=state_members, member="m1" if state_members else "")
    return {r.member: ("own" if r.transport is own else r.url or f"no: {r.reason}")
            for r in routes_of(spec, own, state)}


def test_each_member_is_reached_at_its_url_with_the_targets_certificate() -> None:
    assert _routes(True, members("m3")) == {
        "m1": "own", "m2": "https://127.0.0.2:8443", "m3": "no: it is Offline"}


def test_without_a_client_certificate_only_the_contacted_member_is_reached() -> None:
    routes = _routes(False, members())
    assert routes["m1"] == "own"
    assert routes["m2"].startswith("no: no client certificate")


def test_a_standalone_daemon_is_its_one_member() -> None:
    assert _routes(False, ()) == {"": "own"}
