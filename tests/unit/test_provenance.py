"""Provenance: discovered from git, stripped of credentials, stamped on records, never planned."""

from __future__ import annotations

from pathlib import Path

import git
import pytest

from reconciler.adapters.git import discover, strip_credentials
from reconciler.apply.executor import apply_plan
from reconciler.core.inventory import decode
from reconciler.core.planner import make_plan
from reconciler.core.provenance import stamp
from reconciler.model.observed import Provenance, inventory_key
from tests.support.builders import NOW, build, catalog, config, entry
from tests.support.fakes import FakeReader, FakeStore


@pytest.mark.parametrize(("url", "clean"), [
    ("https://user:ghp_secret@github.com/org/images.git", "https://github.com/org/images.git"),
    ("https://oauth2:tok@gitlab.example:8443/a/b?private_token=x#frag",
     "https://gitlab.example:8443/a/b"),
    ("ssh://git@host.example/org/x.git", "ssh://host.example/org/x.git"),
    ("https://github.com/org/images", "https://github.com/org/images"),
    ("git@github.com:org/images.git", "git@github.com:org/images.git"),
    ("/srv/git/images.git", "/srv/git/images.git"),
])
def test_strip_credentials(url: str, clean: str) -> None:
    assert strip_credentials(url) == clean


def commit_all(repo: git.Repo, message: str) -> str:
    repo.git.add("--all")
    repo.index.commit(message)
    return repo.head.commit.hexsha


@pytest.fixture
def repo(tmp_path: Path) -> git.Repo:
    r = git.Repo.init(tmp_path / "site")
    with r.config_writer() as cw:
        cw.set_value("user", "name", "Test").set_value("user", "email", "t@example.invalid")
    return r


def test_outside_git_or_before_the_first_commit_there_is_none(tmp_path: Path,
                                                              repo: git.Repo) -> None:
    alone = tmp_path / "alone" / "images.yaml"
    alone.parent.mkdir()
    alone.write_text("version: 1\n")
    assert discover(alone) is None
    inside = Path(repo.working_tree_dir or "") / "images.yaml"
    inside.write_text("version: 1\n")
    assert discover(inside) is None


def test_commit_path_and_dirtiness(repo: git.Repo) -> None:
    top = Path(repo.working_tree_dir or "")
    (top / "site").mkdir()
    file = top / "site" / "images.yaml"
    file.write_text("version: 1\n")
    sha = commit_all(repo, "first")
    assert discover(file) == Provenance(commit=sha, repository=str(top.resolve()),
                                        path="site/images.yaml")
    file.write_text("version: 1\nowner: x\n")
    found = discover(file)
    assert found is not None and found.dirty and found.commit == sha
    other = top / "site" / "new.yaml"
    other.write_text("version: 1\n")
    found = discover(other)
    assert found is not None and found.dirty  # untracked: the commit does not hold it


def test_a_linked_worktree_is_found(tmp_path: Path, repo: git.Repo) -> None:
    """The check that spares importing gitpython outside git still finds a worktree,
    whose ``.git`` is a file."""
    top = Path(repo.working_tree_dir or "")
    (top / "images.yaml").write_text("version: 1\n")
    sha = commit_all(repo, "first")
    linked = tmp_path / "linked"
    repo.git.worktree("add", str(linked))
    assert (linked / ".git").is_file()
    found = discover(linked / "images.yaml")
    assert found is not None and found.commit == sha and found.path == "images.yaml"


def test_origin_url_is_recorded_without_credentials(repo: git.Repo) -> None:
    top = Path(repo.working_tree_dir or "")
    (top / "images.yaml").write_text("version: 1\n")
    commit_all(repo, "first")
    repo.create_remote("origin", "https://bot:s3cret@git.example/org/site.git")
    found = discover(top / "images.yaml")
    assert found is not None and found.repository == "https://git.example/org/site.git"
    assert "s3cret" not in found.model_dump_json()


PROV = Provenance(commit="a" * 40, repository="https://git.example/site", path="images.yaml")


def test_stamp_marks_every_record_apply_writes() -> None:
    b1 = build("deb/1", 1)
    cat = catalog(b1)
    store = FakeStore(universe={"r": cat})
    cfg = config(entry("r:deb/1", "deb"))
    plan = stamp(make_plan(cfg, {"r": cat}, {"local": store.observe()}, now=NOW), PROV)
    assert plan.provenance == PROV
    assert [c.record.provenance for c in plan.changes if c.record] == [PROV]
    assert plan.ownership["local"].images[b1.fingerprint].provenance == PROV
    assert stamp(plan, None).provenance is None
    result = apply_plan(plan, stores={"local": store}, reader=FakeReader({"r": cat}),
                        remotes=cfg.remotes)
    assert result.ok
    inv = decode("incus-images", "default",
                 store.config[inventory_key("incus-images", "default")])
    assert inv.images[b1.fingerprint].provenance == PROV


def test_a_new_commit_alone_never_makes_a_plan_change() -> None:
    b1 = build("deb/1", 1)
    cat = catalog(b1)
    store = FakeStore(universe={"r": cat})
    cfg = config(entry("r:deb/1", "deb", properties={"team": "web"}))
    plan = stamp(make_plan(cfg, {"r": cat}, {"local": store.observe()}, now=NOW), PROV)
    assert apply_plan(plan, stores={"local": store}, reader=FakeReader({"r": cat}),
                      remotes=cfg.remotes).ok
    again = make_plan(cfg, {"r": cat}, {"local": store.observe()}, now=NOW)
    newer = PROV.model_copy(update={"commit": "b" * 40})
    assert stamp(again, newer).changes == ()
