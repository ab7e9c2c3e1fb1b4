"""``diff``: entry, settings and lock comparison, reading revisions with gitpython, rendering."""

from __future__ import annotations

import textwrap
from pathlib import Path

import git
import pytest

from reconciler.adapters.git import read_at
from reconciler.adapters.lockfile import render
from reconciler.core.diff import diff_entries, diff_locks, diff_settings
from reconciler.errors import IncusImagesError, ValidationFailed
from reconciler.model.config import AliasDecl, Config, RemoteSpec, TargetSpec
from reconciler.model.lock import LockedBuild, LockFile, LockKey, Locks
from reconciler.model.plan import Action, Change, Plan, summarize
from reconciler.pipeline import run_diff
from reconciler.render.diff import MARKER, render_markdown, render_text
from tests.support.builders import config, entry

FP1, FP2 = "1" * 64, "2" * 64


def test_entries_added_removed_and_changed_field_by_field() -> None:
    base = config(entry("r:deb/1", "deb"), entry("r:old/1"), entry("r:alp/3", "alp"))
    head = config(
        entry("r:deb/1", "deb", auto_update=True, properties={"team": "web"}),
        entry("r:alp/3", "alp"),
        entry("r:new/1", "new", type="virtual-machine", architecture="aarch64"),
    )
    diffs = diff_entries(base, head)
    assert [(d.kind, d.source) for d in diffs] == [
        ("changed", "r:deb/1"), ("added", "r:new/1"), ("removed", "r:old/1")]
    changed = diffs[0]
    assert [(f.name, f.before, f.after) for f in changed.fields] == [
        ("auto_update", False, True), ("properties", {}, {"team": "web"})]
    added = diffs[1]
    assert added.label() == "r:new/1 (virtual-machine, aarch64)"
    assert ("aliases", None, ["new"]) in [(f.name, f.before, f.after) for f in added.fields]
    assert diffs[2].label() == "r:old/1 (container, host architecture)"


def test_entries_are_keyed_per_target() -> None:
    base = config(entry("r:deb/1", target="local"), targets=("local", "prod"))
    head = config(entry("r:deb/1", target="local"), entry("r:deb/1", target="prod"),
                  targets=("local", "prod"))
    assert [(d.kind, d.target) for d in diff_entries(base, head)] == [("added", "prod")]


def test_pin_and_alias_description_changes_are_fields() -> None:
    base = config(entry("r:deb/1", "deb"))
    pinned = entry("r:deb/1", fingerprint=FP1).model_copy(
        update={"aliases": (AliasDecl(name="deb", description="Debian"),)})
    (d,) = diff_entries(base, config(pinned))
    assert {f.name: (f.before, f.after) for f in d.fields} == {
        "fingerprint": (None, FP1), "aliases": (["deb"], ["deb (Debian)"])}


def test_settings_changes_never_show_key_material() -> None:
    base = config(entry("r:deb/1"), server={"images.auto_update_interval": "6"})
    head = base.model_copy(update={
        "owner": "web", "server": {"images.auto_update_interval": "12"},
        "remotes": {"r": RemoteSpec(name="r", url="https://other.test", protocol="incus",
                                    certificate="-----BEGIN CERTIFICATE-----SECRET")},
        "targets": {"local": TargetSpec(name="local", url="unix:///run/local.socket",
                                        client_key="-----BEGIN PRIVATE KEY-----SECRET")},
    })
    diffs = {f.name: (f.before, f.after) for f in diff_settings(base, head)}
    assert diffs["owner"] == ("incus-images", "web")
    assert diffs["server.images.auto_update_interval"] == ("6", "12")
    assert diffs["remotes.r.url"] == ("https://images.test", "https://other.test")
    assert diffs["remotes.r.certificate"] == (None, "(set)")
    assert diffs["targets.local.credentials"] == (None, "(set)")
    assert "SECRET" not in repr(diffs)
    rotated = head.model_copy(update={"remotes": {"r": RemoteSpec(
        name="r", url="https://other.test", protocol="incus", certificate="NEW SECRET")}})
    assert {f.name: (f.before, f.after) for f in diff_settings(head, rotated)} == {
        "remotes.r.certificate": ("(set)", "(changed)")}


def locks(**fps: str) -> Locks:
    return {LockKey("local", f"r:{name}/1", "container", "x86_64"):
            LockedBuild(fingerprint=fp, version=f"v-{fp[0]}", size=1) for name, fp in fps.items()}


def test_lock_changes() -> None:
    base = LockFile.of(locks(deb=FP1, old=FP1))
    head = LockFile.of(locks(deb=FP2, new=FP1))
    got = [(c.key.source, c.before.fingerprint if c.before else None,
            c.after.fingerprint if c.after else None) for c in diff_locks(base, head)]
    assert got == [("r:deb/1", FP1, FP2), ("r:new/1", None, FP1), ("r:old/1", FP1, None)]
    assert diff_locks(None, None) == []


# -- reading revisions -----------------------------------------------------------------------

FILE = """\
version: 1
remotes:
  r:
    url: https://images.test
targets:
  local:
    url: unix:///run/local.socket
images:
  - source: r:deb/1
    aliases: [deb]
"""


@pytest.fixture
def repo(tmp_path: Path) -> git.Repo:
    r = git.Repo.init(tmp_path / "repo")
    with r.config_writer() as cw:
        cw.set_value("user", "name", "t")
        cw.set_value("user", "email", "t@example.test")
    return r


def commit(repo: git.Repo, message: str, **files: str) -> str:
    root = Path(str(repo.working_tree_dir))
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text))
    repo.index.add(list(files))
    return repo.index.commit(message).hexsha


class PlanSpy:
    def __init__(self, plan: Plan | None = None) -> None:
        self.plan = plan or Plan()
        self.calls: list[tuple[Config, Locks | None]] = []

    def __call__(self, config: Config, locks: Locks | None) -> Plan:
        self.calls.append((config, locks))
        return self.plan


def test_read_at_reads_revisions_without_touching_the_working_tree(repo: git.Repo) -> None:
    root = Path(str(repo.working_tree_dir))
    first = commit(repo, "one", **{"images.yaml": FILE})
    commit(repo, "two", **{"images.yaml": FILE + "  - source: r:alp/3\n"})
    (root / "images.yaml").write_text("edited, not committed\n")
    assert read_at(root / "images.yaml", first) == FILE.encode()
    assert b"r:alp/3" in (read_at(root / "images.yaml", "HEAD") or b"")
    assert read_at(root / "images.lock.yaml", "HEAD") is None
    assert (root / "images.yaml").read_text() == "edited, not committed\n"
    with pytest.raises(IncusImagesError, match="unknown git revision 'nope'"):
        read_at(root / "images.yaml", "nope")


def test_read_at_outside_a_repository(tmp_path: Path) -> None:
    (tmp_path / "images.yaml").write_text(FILE)
    with pytest.raises(IncusImagesError, match="is not in a git repository"):
        read_at(tmp_path / "images.yaml", "HEAD")


def test_run_diff_working_tree_against_base_with_lock_bump(repo: git.Repo) -> None:
    root = Path(str(repo.working_tree_dir))
    key = LockKey("local", "r:deb/1", "container", "x86_64")
    old = {key: LockedBuild(fingerprint=FP1, version="20260101_0000", size=10)}
    new = {key: LockedBuild(fingerprint=FP2, version="20260102_0000", size=11)}
    commit(repo, "base", **{"images.yaml": FILE, "images.lock.yaml": render(LockFile.of(old))})
    (root / "images.lock.yaml").write_text(render(LockFile.of(new)))
    spy = PlanSpy()
    report = run_diff(root / "images.yaml", base="HEAD", head=None, environ={}, plan=spy)
    assert report.entries == [] and report.settings == [] and not report.file_changed
    assert [(c.before, c.after) for c in report.locks] == [(old[key], new[key])]
    assert spy.calls[0][1] == new  # the head's locks are the ones planned with
    assert report.head == "working tree"
    text = render_text(report)
    assert "No changes to images.yaml (HEAD -> working tree)." in text
    assert f"~ r:deb/1 (container, x86_64) on local: {FP1[:12]} (20260101_0000) -> " \
        f"{FP2[:12]} (20260102_0000)" in text
    md = render_markdown(report)
    assert md.startswith(MARKER)
    assert "`images.lock.yaml`: 1 entry moved" in md.splitlines()[1]


def test_run_diff_between_two_commits_and_a_new_file(repo: git.Repo) -> None:
    root = Path(str(repo.working_tree_dir))
    first = commit(repo, "readme", **{"README": "x\n"})
    second = commit(repo, "add file", **{"images.yaml": FILE})
    third = commit(repo, "edit", **{"images.yaml": FILE.replace("[deb]", "[deb, debian]")})
    report = run_diff(root / "images.yaml", base=second, head=third, environ={}, plan=PlanSpy())
    assert report.entries is not None
    (only,) = report.entries
    assert [(f.name, f.before, f.after) for f in only.fields] == [
        ("aliases", ["deb"], ["deb", "debian"])]
    assert report.head == third and report.plan == Plan()
    new = run_diff(root / "images.yaml", base=first, head=second, environ={}, plan=PlanSpy())
    assert [e.kind for e in new.entries or []] == ["added"]
    assert any("does not exist at" in n for n in new.notes)


def test_head_must_validate_and_a_bad_base_is_a_note(repo: git.Repo) -> None:
    root = Path(str(repo.working_tree_dir))
    bad = commit(repo, "bad", **{"images.yaml": "version: 7\n"})
    good = commit(repo, "good", **{"images.yaml": FILE})
    report = run_diff(root / "images.yaml", base=bad, head=good, environ={}, plan=PlanSpy())
    assert report.entries is None
    assert any("does not validate" in n and "entry changes are not shown" in n
               for n in report.notes)
    assert "not compared" in render_text(report)
    with pytest.raises(ValidationFailed) as err:
        run_diff(root / "images.yaml", base=good, head=bad, environ={}, plan=PlanSpy())
    assert str(err.value.diagnostics[0]).startswith(f"{root / 'images.yaml'}@{bad}:1:")


def test_markdown_lists_entry_changes_and_plan_tables(repo: git.Repo) -> None:
    root = Path(str(repo.working_tree_dir))
    base = commit(repo, "base", **{"images.yaml": FILE})
    (root / "images.yaml").write_text(FILE + "    auto_update: true\n")
    dl = Change(action=Action.IMAGE_DOWNLOAD, target="local", project="default",
                reason="declared, not in store", fingerprint=FP1, source="r:deb/1", size=2000)
    plan = Plan(changes=(dl,), summary=summarize((dl,)))
    report = run_diff(root / "images.yaml", base=base, head=None, environ={},
                      plan=PlanSpy(plan))
    md = render_markdown(report)
    lines = md.splitlines()
    assert lines[1] == ("**incus-images diff** `" + base + "` → `working tree`: `images.yaml`: "
                        "1 entry changed · **Plan:** 1 to download (2.0 kB to download).")
    assert "| `~` | `r:deb/1 (container, host architecture)` | `local` | " \
        "`auto_update: false -> true` |" in lines
    assert "#### Target `local` (project `default`)" in lines
    assert any(line.startswith("| `+ image.download` | `r:deb/1`") for line in lines)
