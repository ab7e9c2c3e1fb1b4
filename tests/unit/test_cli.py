"""The CLI's contract: exit statuses, which stream gets what, and the error lines.

Commands run through ``reconciler.cli.main`` with fake
:class:`~reconciler.services.Services` (``tests/support/services.py``): a real
``images.yaml`` in a temporary directory, remotes from :class:`FakeReader`,
targets that are :class:`FakeStore` s, a fixed clock, an empty standard input
that is not a terminal.  Nothing is patched into modules; no daemon is contacted.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import pytest
from click.testing import CliRunner

from reconciler.adapters import planfile
from reconciler.apply.lease import LEASE_KEY
from reconciler.cli import Globals, cli, main
from reconciler.core import seal as sealing
from reconciler.errors import Interrupted, StoreError
from reconciler.model.observed import TargetState
from reconciler.model.plan import Plan, PullSource, Writable
from reconciler.services import Services
from tests.support.builders import build, catalog, image
from tests.support.constants import DOWNLOAD_FP as FP
from tests.support.fakes import FakeReader, FakeStore
from tests.support.services import Connections, Readers, services

DEB = build("debian/12", 0).model_copy(update={"fingerprint": FP})  # 1000 bytes
ALP = build("alpine/3.20", 5)
REMOTE = "https://images.test"
SOCKET = "/run/test/incus/unix.socket"

HEAD = f"""\
version: 1
remotes:
  images:
    url: {REMOTE}
targets:
  local: {{}}
  prod:
    url: unix:///run/prod/incus/unix.socket
images:
"""
ALPINE = """\
  - source: images:alpine/3.20
    targets: [prod]
"""
DEBIAN = """\
  - source: images:debian/12
    targets: [local]
"""
FULL = HEAD + DEBIAN + ALPINE
"""Two images, two targets: debian on local, alpine on prod."""
ALPINE_ONLY = HEAD + ALPINE

NO_CHANGES = "No changes. The image stores match images.yaml.\n"
ONE_DOWNLOAD = "Plan: 1 to download (1.0 kB to download).\n"
DEB_LINE = "+ image.download  images:debian/12 4f3a2b1c9d8e (1.0 kB)"


class Store(FakeStore):
    """A FakeStore that can fail or run a hook in ``observe`` and ``pull_image``, and
    records the leases written into it."""

    def __init__(self, target: str, **kw: Any) -> None:
        super().__init__(target, **kw)
        self.on_observe: Callable[[], None] | None = None
        self.on_pull: Callable[[], None] | None = None
        self.leases: int = 0

    def observe(self) -> TargetState:
        if self.on_observe is not None:
            self.on_observe()
        return super().observe()

    def pull_image(self, pull: PullSource, *, certificate: str | None, writable: Writable,
                   progress: object, present: object = None, accepted: object = None) -> str:
        if self.on_pull is not None:
            self.on_pull()
        return super().pull_image(pull, certificate=certificate, writable=writable,
                                  progress=progress)

    def patch_server_config(self, changes: dict[str, str], etag: str) -> None:
        if changes.get(LEASE_KEY):
            self.leases += 1
        super().patch_server_config(changes, etag)


@dataclass
class World:
    """``images.yaml`` in ``root`` (the working directory), one remote, two stores."""

    root: Path
    capsys: pytest.CaptureFixture[str]
    reader: FakeReader = field(default_factory=lambda: FakeReader({}))
    stores: dict[str, Store] = field(default_factory=dict)
    stdin: TextIO = field(default_factory=lambda: io.StringIO(""))
    connections: Connections = field(init=False)
    readers: Readers = field(init=False)

    def __post_init__(self) -> None:
        cat = catalog(DEB, ALP, name="images", url=REMOTE)
        self.reader.catalogs["images"] = cat
        self.stores = {t: Store(t, universe={"images": cat}) for t in ("local", "prod")}
        self.forget()

    def forget(self) -> None:
        """Start counting connects, reads and leases afresh."""
        self.connections = Connections(self.stores)
        self.readers = Readers(self.reader)
        self.reader.fetches.clear()
        for store in self.stores.values():
            store.calls.clear()
            store.leases = 0

    def services(self) -> Services:
        return services(self.connections, self.readers, environ={"INCUS_SOCKET": SOCKET},
                        stdin=self.stdin)

    def write(self, text: str) -> None:
        (self.root / "images.yaml").write_text(text, encoding="utf-8")

    def run(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(list(argv), services=self.services())
        out, err = self.capsys.readouterr()
        return code, out, err

    def applied(self, text: str) -> None:
        """Apply ``text`` for real (setup), then start counting afresh."""
        self.write(text)
        code, _, err = self.run("apply", "--yes")
        assert code == 0, err
        self.forget()

    def converged(self) -> None:
        """Everything of FULL is in place: plans have no changes."""
        self.applied(FULL)
        self.write(FULL)

    def changed(self) -> None:
        """prod holds alpine, local is empty: FULL plans exactly one download (debian)."""
        self.applied(ALPINE_ONLY)
        self.write(FULL)

    def warned(self, *, changes: bool) -> None:
        """A lock file without debian: the plan warns lock.missing (with the one download,
        or with no change)."""
        self.applied(FULL if not changes else ALPINE_ONLY)
        self.write(ALPINE_ONLY)
        assert self.run("lock")[0] == 0
        self.write(FULL)
        self.forget()

    def pulls(self) -> list[str]:
        return [c for s in self.stores.values() for c in s.calls if c.startswith("pull")]


@pytest.fixture
def w(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
      capsys: pytest.CaptureFixture[str]) -> World:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    return World(root=tmp_path, capsys=capsys)


# -- validate -------------------------------------------------------------------------------

def test_validate_ok(w: World) -> None:
    w.write(FULL)
    assert w.run("validate") == (0, "images.yaml: valid (2 images, 2 targets)\n", "")
    assert w.connections.connected == [] and w.readers.opened == 0


def test_validate_other_file_singular(w: World) -> None:
    (w.root / "site").mkdir()
    (w.root / "site" / "x.yaml").write_text(
        HEAD.replace("  prod:\n    url: unix:///run/prod/incus/unix.socket\n", "") + DEBIAN)
    assert w.run("validate", "-f", "site/x.yaml") == (
        0, "site/x.yaml: valid (1 image, 1 target)\n", "")


def test_validation_errors_are_file_line_column_lines(w: World) -> None:
    w.write(FULL.replace("version: 1", "version: 2").replace("images:debian", "nope:debian"))
    code, out, err = w.run("validate")
    assert (code, out) == (1, "")
    lines = err.splitlines()
    assert len(lines) == 2 and all(line.startswith("images.yaml:") for line in lines)
    assert lines[0].startswith("images.yaml:1:") and "version" in lines[0]
    assert lines[1].startswith("images.yaml:10:") and "nope" in lines[1]


def test_validation_errors_stop_plan_and_apply(w: World) -> None:
    w.write(FULL.replace("version: 1", "version: 2"))
    assert w.run("plan")[0:2] == (1, "")
    assert w.run("apply", "--yes")[0:2] == (1, "")
    assert w.connections.connected == [] and w.readers.opened == 0


def test_unreadable_file_is_an_expected_error(w: World) -> None:
    assert w.run("validate") == (
        1, "", "images.yaml:1:1: cannot read the file: No such file or directory\n")


# -- plan -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("state", "flags", "status"), [
    ("converged", [], 0),
    ("converged", ["--detailed-exitcode"], 0),
    ("changed", [], 0),
    ("changed", ["--detailed-exitcode"], 2),
    ("changed", ["--fail-on-warnings"], 0),
    ("changed+warning", ["--detailed-exitcode"], 2),
    ("changed+warning", ["--fail-on-warnings"], 1),
    ("changed+warning", ["--fail-on-warnings", "--detailed-exitcode"], 1),
    ("warning", ["--fail-on-warnings", "--detailed-exitcode"], 1),
])
def test_plan_exit_status(w: World, state: str, flags: list[str], status: int) -> None:
    {"converged": w.converged, "changed": w.changed,
     "changed+warning": lambda: w.warned(changes=True),
     "warning": lambda: w.warned(changes=False)}[state]()
    code, out, err = w.run("plan", *flags)
    assert code == status
    assert out.endswith(NO_CHANGES if state in ("converged", "warning") else ONE_DOWNLOAD)
    if status == 1:
        assert err == ("incus-images: error: the plan has 1 warning and --fail-on-warnings "
                       "is set\n")
    else:
        assert err == ""


def test_plan_observes_the_targets_named_once_each(w: World) -> None:
    w.converged()
    assert w.run("plan", "--target", "prod")[0] == 0
    assert (w.stores["prod"].calls, w.stores["local"].calls) == (["observe"], [])
    assert w.connections.connected == ["prod"]
    w.forget()
    assert w.run("plan", "--target", "prod", "--target", "local", "--target", "prod")[0] == 0
    assert (w.stores["prod"].calls, w.stores["local"].calls) == (["observe"], ["observe"])


def test_plan_passes_allow_empty(w: World) -> None:
    w.converged()
    w.write(HEAD + "  []\n")
    code, _, err = w.run("plan")
    assert code == 1 and "Pass --allow-empty if that is what you want." in err
    code, out, _ = w.run("plan", "--allow-empty")
    assert code == 0 and "2 to delete" in out


def test_unknown_target(w: World) -> None:
    w.write(FULL)
    assert w.run("plan", "--target", "x") == (
        1, "", "incus-images: error: unknown target 'x' (the file declares: local, prod)\n")
    assert w.run("apply", "--yes", "--target", "x")[0] == 1
    assert w.connections.connected == []


@pytest.mark.parametrize("fmt", ["json", "markdown", "text"])
def test_plan_formats_go_to_stdout(w: World, fmt: str) -> None:
    w.changed()
    code, out, err = w.run("plan", "--format", fmt)
    assert (code, err) == (0, "")
    if fmt == "json":
        plan = Plan.model_validate(json.loads(out))
        assert [(c.action.value, c.target, c.fingerprint) for c in plan.changes] == [
            ("image.download", "local", FP)]
    elif fmt == "markdown":
        assert out.startswith("**Plan:** 1 to download")
    else:
        assert DEB_LINE in out


def test_plan_is_made_at_the_clock_it_is_given(w: World) -> None:
    w.changed()
    plan = Plan.model_validate(json.loads(w.run("plan", "--format", "json")[1]))
    assert plan.created_at == w.services().clock()


# -- errors ---------------------------------------------------------------------------------

def _fail(exc: BaseException) -> Callable[[], None]:
    def fail() -> None:
        raise exc
    return fail


def test_expected_error_one_line_no_traceback(w: World) -> None:
    w.write(FULL)
    w.stores["local"].on_observe = _fail(StoreError("local", "connection refused"))
    assert w.run("plan", "--target", "local") == (
        1, "", "incus-images: error: target 'local': connection refused\n")


def test_expected_error_with_debug_has_traceback(w: World) -> None:
    w.write(FULL)
    w.stores["local"].on_observe = _fail(StoreError("local", "connection refused"))
    for argv in (["--debug", "plan", "--target", "local"],
                 ["plan", "--debug", "--target", "local"]):
        code, _, err = w.run(*argv)
        assert code == 1
        assert err.startswith("Traceback (most recent call last):")
        assert err.endswith("incus-images: error: target 'local': connection refused\n")


def test_internal_error_exits_3(w: World) -> None:
    w.write(FULL)
    w.stores["local"].on_observe = _fail(ZeroDivisionError("division by zero"))
    assert w.run("plan") == (3, "", "incus-images: internal error: ZeroDivisionError: division "
                                    "by zero (run with --debug for a traceback)\n")
    code, _, err = w.run("--debug", "plan")
    assert code == 3
    assert "Traceback (most recent call last):" in err
    assert err.endswith("incus-images: internal error: ZeroDivisionError: division by zero\n")


def test_interrupt_exits_130(w: World) -> None:
    w.write(FULL)
    w.stores["local"].on_observe = _fail(KeyboardInterrupt())
    assert w.run("plan") == (130, "", "incus-images: interrupted (SIGINT)\n")


class SignallingReader(FakeReader):
    """Sends ``sig`` to this process when the plan reads the remotes (in the main thread;
    an in-process run installs the CLI's handlers and puts pytest's back after it)."""

    sig = 0

    def fetch_catalog(self, remote: Any) -> Any:
        if self.sig:
            os.kill(os.getpid(), self.sig)
            time.sleep(5)  # the handler raises in the main thread long before this ends
            raise AssertionError("the signal did not interrupt")
        return super().fetch_catalog(remote)


@pytest.fixture
def sw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
       capsys: pytest.CaptureFixture[str]) -> World:
    monkeypatch.chdir(tmp_path)
    return World(root=tmp_path, capsys=capsys, reader=SignallingReader({}))


@pytest.mark.parametrize(("sig", "code", "name"), [(2, 130, "SIGINT"), (15, 143, "SIGTERM")])
def test_a_real_signal_exits_128_plus_its_number_with_one_line(
        sw: World, sig: int, code: int, name: str) -> None:
    sw.write(FULL)
    sw.reader.sig = sig  # type: ignore[attr-defined]
    assert sw.run("plan") == (code, "", f"incus-images: interrupted ({name})\n")
    assert sw.connections.still_open == []


def test_a_signal_while_apply_plans_says_nothing_was_changed(sw: World) -> None:
    sw.write(FULL)
    sw.reader.sig = 15  # type: ignore[attr-defined]
    code, out, err = sw.run("apply", "--yes")
    assert (code, out) == (143, "")
    assert err == "incus-images: interrupted (SIGTERM): nothing was changed; leases released\n"
    assert sw.connections.still_open == []
    assert not any(LEASE_KEY in s.config for s in sw.stores.values())


def test_a_signal_while_applying_says_where_apply_stopped(w: World) -> None:
    """The executor words where it stopped (test_interrupts); the CLI passes it on."""
    w.changed()

    def signal_then_finish() -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)  # the main thread is interrupted meanwhile; this change still ends

    w.stores["local"].on_pull = signal_then_finish
    code, _, err = w.run("apply", "--yes")
    assert code == 143
    last = err.splitlines()[-1]  # after the progress lines
    assert last.startswith("incus-images: interrupted (SIGTERM): stopped ")
    assert last.endswith("; leases released")
    assert w.connections.still_open == []


def test_an_interrupt_the_apply_did_not_word_says_how_far_it_got() -> None:
    """The fallback: where the command was, when apply itself did not say."""
    from reconciler.commands import _until_applied

    for step, said in ((0, "nothing was changed"), (1, "stopped while applying the changes"),
                       (2, "stopped after the last change")):
        with pytest.raises(Interrupted) as caught, _until_applied() as stage:
            if step >= 1:
                stage.applying()
            if step >= 2:
                stage.applied()
            raise Interrupted(signal.SIGTERM)
        assert caught.value.progress == said


def test_usage_errors_exit_1_not_2(w: World) -> None:
    w.write(FULL)
    code, out, err = w.run("plan", "--detailed-exitcod")
    assert (code, out) == (1, "")
    assert "No such option" in err
    assert w.run("plan", "--format", "yaml")[0] == 1
    assert w.run("nope")[0] == 1
    assert w.connections.connected == []


def test_version_and_help(w: World) -> None:
    assert w.run("--version") == (0, "incus-images 0.1.0\n", "")
    for command in ("plan", "apply", "validate"):
        code, out, _ = w.run(command, "--help")
        assert code == 0
        assert "Exit status:" in out and "Example" in out
    code, out, _ = w.run()
    assert code == 0 and "Commands:" in out


def test_python_dash_m() -> None:
    done = subprocess.run([sys.executable, "-m", "reconciler", "--version"],
                          capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout) == (0, "incus-images 0.1.0\n")


def test_click_runner_sees_the_same_statuses(w: World) -> None:
    w.changed()
    obj = Globals(services=w.services())
    result = CliRunner().invoke(cli, ["plan", "--detailed-exitcode"], obj=obj)
    assert result.exit_code == 2, result.output
    assert CliRunner().invoke(cli, ["plan", "--bogus"], obj=obj).exit_code == 1


# -- apply ----------------------------------------------------------------------------------

def test_apply_refuses_without_yes_off_a_terminal(w: World) -> None:
    w.changed()
    code, out, err = w.run("apply")
    assert code == 1
    assert out.endswith(ONE_DOWNLOAD)
    assert err == ("incus-images: error: refusing to apply without --yes when not on a "
                   "terminal\n")
    assert w.pulls() == []


def test_apply_with_nothing_to_change_exits_0(w: World) -> None:
    w.converged()
    assert w.run("apply") == (0, NO_CHANGES, "")
    assert w.pulls() == []


def test_apply_yes(w: World) -> None:
    w.changed()
    code, out, _ = w.run("apply", "--yes", "--target", "local")
    assert code == 0
    assert out.endswith("Apply complete: 1 done in 0s.\n"
                        "  done:    1 image.download (1.0 kB downloaded)\n")
    assert out.count("Plan: 1 to download") == 1  # the plan once, then a summary
    assert "image.download  images:debian/12" in out
    assert w.pulls() == ["pull debian/12"]
    assert w.connections.operation_timeouts == [3600.0]


def test_apply_passes_the_operation_timeout_on(w: World) -> None:
    w.changed()
    assert w.run("apply", "--yes", "--operation-timeout", "7.5")[0] == 0
    assert set(w.connections.operation_timeouts) == {7.5}
    code, _, err = w.run("apply", "--yes", "--operation-timeout", "0")
    assert code == 1 and "--operation-timeout" in err


def test_apply_failure_names_each_failed_change(w: World) -> None:
    w.changed()
    w.stores["local"].on_pull = _fail(StoreError("local", "connection reset by peer"))
    code, out, err = w.run("apply", "--yes")
    assert code == 1, err
    assert out.endswith("Apply failed: 0 done, 1 failed in 0s.\n"
                        "  failed:  local: image.download images:debian/12 4f3a2b1c9d8e: "
                        "target 'local': connection reset by peer\n")
    progress, error = err.splitlines()
    assert progress.startswith("local: image.download images:debian/12 4f3a2b1c9d8e: FAILED")
    assert error == ("incus-images: error: local: image.download images:debian/12 4f3a2b1c9d8e "
                     "failed: target 'local': connection reset by peer")


def test_apply_json_prints_one_result_document(w: World) -> None:
    w.changed()
    code, out, _ = w.run("apply", "--yes", "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["ok"] is True and doc["outcomes"][0]["change"]["action"] == "image.download"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("answer", "status"), [("y\n", 0), ("yes\n", 0), ("n\n", 1),
                                               ("\n", 1), ("", 1)])
def test_apply_asks_on_a_terminal(w: World, answer: str, status: int) -> None:
    w.changed()
    w.stdin = Tty(answer)
    code, out, err = w.run("apply")
    assert code == status
    assert "Plan: 1 to download" in out
    assert err.startswith("Apply these changes? [y/N] ")
    if status:
        assert err.endswith("incus-images: error: apply cancelled\n")
        assert w.pulls() == []
    else:
        assert w.pulls() == ["pull debian/12"]


def test_apply_takes_the_leases_of_the_targets_it_works_on(w: World) -> None:
    w.changed()
    w.run("apply", "--yes")
    assert (w.stores["local"].leases, w.stores["prod"].leases) == (1, 1)
    w.forget()
    w.run("apply", "--yes", "--target", "prod")
    assert (w.stores["local"].leases, w.stores["prod"].leases) == (0, 1)
    w.forget()
    w.run("plan")
    assert (w.stores["local"].leases, w.stores["prod"].leases) == (0, 0)  # plan takes none


# -- one connection per target per command --------------------------------------------------

def test_apply_connects_each_target_once_and_closes_it(w: World) -> None:
    """Leases, the plan's observation and apply share one store per target."""
    w.changed()
    code, _, err = w.run("apply", "--yes")
    assert code == 0, err
    assert sorted(w.connections.connected) == ["local", "prod"]
    assert sorted(w.connections.closed) == ["local", "prod"]
    assert (w.readers.opened, w.readers.closed) == (1, 1)
    assert w.pulls() == ["pull debian/12"]


def test_every_command_closes_what_it_opened(w: World, tmp_path: Path) -> None:
    w.changed()
    saved = tmp_path / "plan.json"
    for argv in (["plan"], ["plan", "--out", str(saved)], ["status"], ["lock"],
                 ["apply", str(saved)], ["apply", "--yes"]):
        w.forget()
        assert w.run(*argv)[0] == 0, argv
        assert w.connections.connected, argv
        assert len(w.connections.connected) == len(set(w.connections.connected)), argv
        assert w.connections.still_open == [], argv
        assert w.readers.opened == w.readers.closed == 1, argv


def test_a_failing_command_closes_what_it_opened(w: World) -> None:
    w.write(FULL)
    w.stores["prod"].on_observe = _fail(StoreError("prod", "connection refused"))
    assert w.run("apply", "--yes")[0] == 1
    assert sorted(w.connections.connected) == ["local", "prod"]
    assert w.connections.still_open == [] and w.readers.closed == 1


# -- saved plans: plan --out, show, apply PLAN ---------------------------------------------

def saved(w: World, tmp_path: Path) -> Path:
    out = tmp_path / "plan.json"
    code, _, err = w.run("plan", "--out", str(out))
    assert code == 0
    assert err == (f"incus-images: saved the plan to {out}; apply exactly this plan with: "
                   f"incus-images apply -f images.yaml {out}\n")
    w.forget()
    return out


def test_plan_out_writes_a_sealed_plan_and_prints_as_usual(w: World, tmp_path: Path) -> None:
    w.changed()
    out = tmp_path / "plan.json"
    code, stdout, _ = w.run("plan", "--out", str(out), "--format", "json")
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc == json.loads(stdout)
    assert doc["digest"] == sealing.digest_of(doc)
    assert planfile.load(out) == Plan.model_validate(doc)


@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_show_renders_a_saved_plan(w: World, tmp_path: Path, fmt: str) -> None:
    w.changed()
    out = saved(w, tmp_path)
    (w.root / "images.yaml").unlink()  # show reads no desired-state file
    code, stdout, err = w.run("show", str(out), "--format", fmt)
    assert (code, err) == (0, "")
    if fmt == "json":
        assert stdout == out.read_text()
    elif fmt == "markdown":
        assert stdout.startswith("Saved plan of owner 'incus-images'")
        assert "**Plan:** 1 to download" in stdout
    else:
        assert stdout.startswith("Saved plan of owner 'incus-images'")
        assert DEB_LINE in stdout
    assert w.connections.connected == [] and w.readers.opened == 0  # and contacts nothing


@pytest.mark.parametrize(("content", "message"), [
    (b'{"format_version": "1", "chan', "is not a saved plan: invalid JSON"),
    (b'{"a": 1}', "is not a saved plan of format version 1"),
    (None, "has been edited since it was saved"),
])
def test_show_and_apply_reject_bad_files(w: World, tmp_path: Path, content: bytes | None,
                                         message: str) -> None:
    w.changed()
    out = saved(w, tmp_path)
    out.write_bytes(content if content is not None
                    else out.read_bytes().replace(b'"images:debian/12"', b'"images:evil/1"'))
    for argv in (["show", str(out)], ["apply", str(out)]):
        code, stdout, err = w.run(*argv)
        assert (code, stdout) == (1, "")
        assert err.startswith(f"incus-images: error: {out} ") and message in err
        assert err.count("\n") == 1 and "Traceback" not in err
    assert w.pulls() == [] and w.connections.connected == []


def test_apply_plan_applies_exactly_it_without_asking(w: World, tmp_path: Path) -> None:
    w.changed()
    out = saved(w, tmp_path)
    code, stdout, _ = w.run("apply", str(out))  # off a terminal, without --yes
    assert code == 0
    assert "Plan: 1 to download" in stdout
    assert stdout.endswith("Apply complete: 1 done in 0s.\n"
                           "  done:    1 image.download (1.0 kB downloaded)\n")
    assert w.pulls() == ["pull debian/12"]
    assert w.reader.fetches == []  # it did not plan again
    assert (w.stores["local"].leases, w.stores["prod"].leases) == (1, 0)
    assert w.connections.connected == ["local"]


def test_apply_plan_refuses_when_stale_and_changes_nothing(w: World, tmp_path: Path) -> None:
    w.changed()
    out = saved(w, tmp_path)
    w.stores["local"].put(image(FP, type="container", architecture="x86_64"))  # by hand
    code, _, err = w.run("apply", str(out))
    assert code == 1
    assert err.startswith(f"incus-images: error: the saved plan {out} is stale")
    assert w.pulls() == []


def test_apply_plan_refuses_when_the_file_changed(w: World, tmp_path: Path) -> None:
    w.changed()
    out = saved(w, tmp_path)
    w.write(FULL + "    aliases: [alp]\n")
    code, _, err = w.run("apply", str(out))
    assert code == 1 and "is stale: images.yaml has changed since the plan was made" in err
    assert w.pulls() == [] and w.connections.connected == []


def test_apply_plan_with_target_is_an_error(w: World, tmp_path: Path) -> None:
    w.changed()
    out = saved(w, tmp_path)
    assert w.run("apply", "--target", "local", str(out)) == (
        1, "", "incus-images: error: --target cannot be used with a saved plan: the plan "
               "already says which targets it changes\n")
    assert w.pulls() == []


def test_apply_plan_without_changes_contacts_nothing(w: World, tmp_path: Path) -> None:
    w.converged()
    out = saved(w, tmp_path)
    assert w.run("apply", str(out)) == (0, NO_CHANGES, "")
    assert w.connections.connected == [] and w.readers.opened == 0
