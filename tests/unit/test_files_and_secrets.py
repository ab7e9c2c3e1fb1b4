"""Files and secrets: exclusive atomic writes, private saved plans, no URL credentials in
any output nor handed to the daemon, terminal-safe ``show``, bounded plan files."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler.adapters import lockfile, planfile
from reconciler.adapters.files import write_atomic
from reconciler.adapters.remotes import incus as incus_remote
from reconciler.adapters.remotes import simplestreams
from reconciler.apply.executor import apply_plan
from reconciler.cli import cli, exit_status
from reconciler.core.diff import diff_settings
from reconciler.core.planner import make_plan
from reconciler.desired.fieldvalues import remote_url_problem
from reconciler.errors import PlanError, RemoteError, StoreError
from reconciler.model.config import Config, RemoteSpec
from reconciler.model.lock import LockedBuild, LockFile, LockKey
from reconciler.model.plan import Plan
from reconciler.model.remote import RemoteCatalog
from reconciler.redact import redact_url, scrub, without_userinfo
from reconciler.render import render_plan, terminal_safe
from tests.support.builders import NOW, build, catalog, config, entry
from tests.support.fakes import FakeReader, FakeStore
from tests.unit.test_simplestreams import doc, product, version

PASSWORD = "s3cr3t-Pa55"
SECRET_URL = f"https://ci-bot:{PASSWORD}@images.test/mirror"
PLAIN_URL = "https://images.test/mirror"


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


# -- atomic writes --------------------------------------------------------------------------

def test_lock_does_not_follow_a_symlink_planted_at_the_old_temporary_name(
        tmp_path: Path) -> None:
    """A checkout can hold ``.images.lock.yaml.tmp -> ~/.bashrc``: lock must not write there."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    path = tmp_path / "images.lock.yaml"
    (tmp_path / ".images.lock.yaml.tmp").symlink_to(victim)
    lock = LockFile.of({LockKey("local", "r:deb/1", "container", "x86_64"):
                        LockedBuild(fingerprint="a" * 64, version="1", size=1)})

    assert lockfile.write(path, lock) is True

    assert victim.read_text() == "precious\n"
    assert path.read_text() == lockfile.render(lock) and not path.is_symlink()
    assert (tmp_path / ".images.lock.yaml.tmp").is_symlink()  # left alone, not replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".images.lock.yaml.tmp", "images.lock.yaml", "victim"]


def test_atomic_write_never_opens_an_existing_name(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Even when the random name is taken (by a symlink), another name is used."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    names = iter(["taken", "free"])
    monkeypatch.setattr("reconciler.adapters.files.secrets.token_hex", lambda _n: next(names))
    (tmp_path / ".out.taken.tmp").symlink_to(victim)
    write_atomic(tmp_path / "out", b"new\n", mode=0o600)
    assert victim.read_text() == "precious\n"
    assert (tmp_path / "out").read_bytes() == b"new\n"
    assert not (tmp_path / ".out.free.tmp").exists()


def test_a_failed_atomic_write_leaves_the_destination_and_no_temporary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "out"
    path.write_text("old\n")

    def broken(*_a: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("reconciler.adapters.files.os.fsync", broken)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(path, b"new\n", mode=0o600)
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and path.read_text() == "old\n"


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o000])
def test_a_saved_plan_is_private_whatever_the_umask(tmp_path: Path, mask: int) -> None:
    path = tmp_path / "plan.json"
    with umask(mask):
        planfile.save(Plan(), path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        planfile.save(Plan(owner="again"), path)  # replacing keeps it private
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_lock_file_gets_the_umask_s_mode(tmp_path: Path) -> None:
    """A lock file is committed and holds no secret: the umask decides, as for any file."""
    lock = LockFile.of({})
    with umask(0o022):
        lockfile.write(tmp_path / "a.lock.yaml", lock)
    with umask(0o077):
        lockfile.write(tmp_path / "b.lock.yaml", lock)
    assert stat.S_IMODE((tmp_path / "a.lock.yaml").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.lock.yaml").stat().st_mode) == 0o600


# -- URL credentials -----------------------------------------------------------------------------

def test_url_helpers() -> None:
    assert without_userinfo(SECRET_URL) == PLAIN_URL
    assert redact_url(SECRET_URL) == "https://***@images.test/mirror"
    assert redact_url(PLAIN_URL) == PLAIN_URL == without_userinfo(PLAIN_URL)
    assert without_userinfo("http://u:p@h:8443/a?x=1#f") == "http://h:8443/a?x=1#f"
    assert scrub(f"GET {SECRET_URL}/x failed; see http://a:b@c@d/") == (
        "GET https://***@images.test/mirror/x failed; see http://***@d/")
    assert scrub("alias debian/12@latest, mail me@example.com") == (
        "alias debian/12@latest, mail me@example.com")


def secret_config(*entries: Any) -> Config:
    cfg = config(*entries)
    return cfg.model_copy(update={"remotes": {
        "r": RemoteSpec(name="r", url=SECRET_URL, protocol="simplestreams")}})


def served_catalog(remote: RemoteSpec) -> RemoteCatalog:
    """What the real simplestreams parser makes of an index served at ``remote.url``."""
    products = doc(**{"tiny:1.0:amd64:default": product(
        {"20260101_0000": version("20260101_0000", "squashfs")}, aliases="deb/1")})
    return simplestreams.build_catalog(remote, [products], None)


def test_catalogs_record_the_url_without_credentials() -> None:
    remote = RemoteSpec(name="r", url=SECRET_URL, protocol="simplestreams")
    assert served_catalog(remote).url == PLAIN_URL
    other = RemoteSpec(name="i", url=SECRET_URL, protocol="incus")
    assert incus_remote.build_catalog(other, []).url == PLAIN_URL


def test_no_plan_output_nor_saved_plan_nor_show_carries_the_password(tmp_path: Path) -> None:
    cfg = secret_config(entry("r:deb/1", "deb", auto_update=True))
    cat = served_catalog(cfg.remotes["r"])
    store = FakeStore(universe={"r": cat})
    plan = make_plan(cfg, {"r": cat}, {"local": store.observe()}, now=NOW)
    download = plan.changes[0]
    assert download.pull is not None and download.pull.server == PLAIN_URL
    # The daemon cannot auto-update what it never gets a source for: said at plan time.
    assert [w.code for w in plan.warnings] == ["auto_update.no_source"]
    assert "credentials" in plan.warnings[0].message

    outputs = [render_plan(plan, fmt) for fmt in ("text", "json", "markdown")]
    saved = tmp_path / "plan.json"
    planfile.save(plan.model_copy(update={"desired_digest": cfg.digest, "observed": {}}), saved)
    outputs.append(saved.read_text())
    runner = CliRunner()
    for fmt in ("text", "json", "markdown"):
        shown = runner.invoke(cli, ["show", str(saved), "--format", fmt])
        assert shown.exit_code == 0, shown.output
        outputs.append(shown.output)
    for out in outputs:
        assert PASSWORD not in out and "ci-bot" not in out
    assert PLAIN_URL in outputs[1]


def test_apply_never_hands_the_daemon_a_remote_with_credentials() -> None:
    """The daemon would store ``source.server`` and show it: the tool uploads instead."""
    b1 = build("deb/1", 1)
    cat = catalog(b1, url=PLAIN_URL)
    store = FakeStore(universe={"r": cat})
    cfg = secret_config(entry("r:deb/1", "deb"))
    plan = make_plan(cfg, {"r": cat}, {"local": store.observe()}, now=NOW)
    notes: list[str] = []

    class Notes:
        def start(self, *_a: Any) -> None: ...
        def progress(self, *_a: Any) -> None: ...
        def done(self, *_a: Any) -> None: ...
        def note(self, _target: str, text: str) -> None:
            notes.append(text)

    result = apply_plan(plan, stores={"local": store}, reader=FakeReader({"r": cat}),
                        remotes=cfg.remotes, reporter=Notes())  # type: ignore[arg-type]
    assert result.ok, [o.message for o in result.failed]
    assert not [c for c in store.calls if c.startswith("pull")]
    assert f"upload {b1.fingerprint}" in store.calls
    assert result.outcomes[0].via == "upload"
    assert "credentials" in result.outcomes[0].message and PASSWORD not in str(result)
    assert notes and all(PASSWORD not in n for n in notes)
    assert store.images[b1.fingerprint].update_source is None


def test_an_incus_remote_is_pulled_by_the_daemon_without_the_userinfo() -> None:
    assert RemoteSpec(name="i", url=SECRET_URL, protocol="incus").daemon_can_pull
    assert not RemoteSpec(name="s", url=SECRET_URL, protocol="simplestreams").daemon_can_pull
    assert RemoteSpec(name="s", url=PLAIN_URL, protocol="simplestreams").daemon_can_pull


def test_error_lines_never_carry_the_password(capsys: pytest.CaptureFixture[str]) -> None:
    errors = [RemoteError("r", f"GET {SECRET_URL}/streams/v1/index.json answered HTTP 401"),
              StoreError("local", f"pull of {SECRET_URL} deb/1 failed")]
    for exc in errors:
        assert PASSWORD not in str(exc) and "***@images.test" in str(exc)

    def fails() -> int:
        raise PlanError(f"something about {SECRET_URL}\nand \x1b[2Jmore")

    class Leaky(Exception):
        pass

    def internal() -> int:
        raise Leaky(f"cannot open {SECRET_URL}")

    assert exit_status(fails, debug=False) == 1
    assert exit_status(internal, debug=False) == 3
    err = capsys.readouterr().err
    assert PASSWORD not in err and err.count("https://***@images.test/mirror") == 2
    assert "\x1b" not in err and "\\u001b[2Jmore" in err
    assert PASSWORD not in (remote_url_problem(f"ftp://u:{PASSWORD}@h/") or "x" + PASSWORD)


def test_a_remote_url_with_credentials_in_the_diff_shows_redacted() -> None:
    base = config()
    head = secret_config()
    (changed,) = [d for d in diff_settings(base, head) if d.name == "remotes.r.url"]
    assert PASSWORD not in str(changed.after) and "***@" in str(changed.after)


def test_the_reader_s_transport_errors_never_carry_the_password() -> None:
    """A refused connection on loopback (nothing listens on the port of a closed socket)."""
    import socket

    from reconciler.adapters.remotes.reader import HttpRemoteReader

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    remote = RemoteSpec(name="r", url=f"http://ci-bot:{PASSWORD}@127.0.0.1:{port}",
                        protocol="simplestreams")
    with HttpRemoteReader(retries=0) as reader, pytest.raises(RemoteError) as caught:
        reader.fetch_catalog(remote)
    assert PASSWORD not in str(caught.value) and "***@127.0.0.1" in str(caught.value)


# -- show: escape sequences and hostile files -----------------------------------------------------

def test_terminal_safe_escapes_controls_and_keeps_layout() -> None:
    assert terminal_safe("a\tb\nc") == "a\tb\nc"
    assert terminal_safe("\x1b[2J\x1b]0;t\x07\r\x9b\u202e") == (
        "\\u001b[2J\\u001b]0;t\\u0007\\u000d\\u009b\\u202e")
    json.loads(terminal_safe(json.dumps({"k": "\x85\u202e"}, ensure_ascii=False)))


def test_show_prints_escape_sequences_from_a_plan_file_escaped(tmp_path: Path) -> None:
    cfg = config(entry("r:deb/1", "deb"))
    cat = catalog(build("deb/1", 1))
    plan = make_plan(cfg, {"r": cat}, {"local": FakeStore().observe()}, now=NOW)
    evil = "\x1b]0;pwned\x07\x1b[2J\x1b[31mred\r\x9b"
    change = plan.changes[0].model_copy(update={"reason": evil, "description": evil})
    plan = plan.model_copy(update={"changes": (change, *plan.changes[1:]),
                                   "notes": (evil,), "desired_digest": cfg.digest,
                                   "observed": {}})
    saved = tmp_path / "plan.json"
    planfile.save(plan, saved)
    runner = CliRunner()
    for fmt in ("text", "markdown", "json"):
        shown = runner.invoke(cli, ["show", str(saved), "--format", fmt])
        assert shown.exit_code == 0, shown.output
        assert not any(ch in shown.output for ch in "\x1b\x07\r\x9b"), (fmt, shown.output)
        if fmt != "json":
            assert "\\u001b]0;pwned" in shown.output
        else:
            assert json.loads(shown.output)["notes"] == [evil]


@pytest.mark.parametrize("text", [
    "[" * 100_000 + "]" * 100_000,
    '{"a":' * 500 + "1" + "}" * 500,
    '{"format_version": "1", "digest": "0", "x": ' + "[" * 70 + "]" * 70 + "}",
])
def test_a_deeply_nested_plan_file_is_one_error_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "deep.json"
    path.write_text(text)
    shown = CliRunner().invoke(cli, ["show", str(path)])
    assert shown.exit_code == 1, shown.output
    lines = shown.output.splitlines()
    assert len(lines) == 1 and "nested more than 64 levels" in lines[0], lines


def test_a_huge_plan_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as f:
        f.write(b'{"pad": "')
        f.truncate(planfile.MAX_PLAN_BYTES + 10)
    shown = CliRunner().invoke(cli, ["show", str(path)])
    assert shown.exit_code == 1
    assert shown.output.splitlines() == [
        f"incus-images: error: {path} is not a saved plan: it is larger than 16 MiB"]


def test_status_never_shows_credentials_the_daemon_recorded() -> None:
    """An image pulled (by hand, or by an older version) from a URL with credentials: the
    daemon shows them as its source; status names the declared remote, or redacts."""
    from reconciler.core.status import shape
    from reconciler.model.observed import ObservedImage, TargetState, UpdateSource
    from reconciler.render.status import render_json, render_text

    ours = ObservedImage(fingerprint="a" * 64, update_source=UpdateSource(
        server=SECRET_URL, protocol="simplestreams", alias="deb/1"))
    theirs = ObservedImage(fingerprint="b" * 64, update_source=UpdateSource(
        server=f"https://u:{PASSWORD}@elsewhere.test", protocol="simplestreams", alias="x/1"))
    target = TargetState(target="local", project="default", effective_project="default",
                         host_architecture="x86_64", images=(ours, theirs))
    report = shape(secret_config(entry("r:deb/1", "deb")), {"local": target}, None, None)
    sources = {i["fingerprint"][0]: i["source"]
               for i in report.to_json_dict()["targets"]["local"]["images"]}
    assert sources == {"a": "r:deb/1", "b": "https://***@elsewhere.test:x/1"}
    for out in (render_text(report), render_json(report)):
        assert PASSWORD not in out


def test_progress_lines_are_terminal_safe_and_carry_no_password() -> None:
    import io

    from reconciler.model.plan import Action, Change
    from reconciler.model.result import Outcome, Status
    from reconciler.render.live import TtyReporter
    from reconciler.render.progress import PlainReporter

    change = Change(action=Action.IMAGE_DOWNLOAD, target="local", project="default",
                    reason="r", fingerprint="a" * 64, source="r:deb/1")
    failed = Outcome(change=change, status=Status.FAILED,
                     message=f"\x1b[2Jpull of {SECRET_URL} failed")
    for reporter_of in (PlainReporter, TtyReporter):
        stream = io.StringIO()
        reporter = reporter_of(stream)
        reporter.progress("local", change, "rootfs: 10% \x1b]0;x\x07")
        reporter.note("local", f"\x9bnote about {SECRET_URL}")
        reporter.done(failed)
        if isinstance(reporter, TtyReporter):
            reporter.close()
        out = stream.getvalue()
        assert PASSWORD not in out and not any(ch in out for ch in "\x07\x9b"), out
        # The bars' own escape sequences aside, none comes from the daemon's words.
        assert "\x1b[2J" not in out and "\x1b]" not in out, out
        if reporter_of is PlainReporter:
            assert "\x1b" not in out
