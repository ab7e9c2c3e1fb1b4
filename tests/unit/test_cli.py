"""The CLI's contract: exit statuses, which stream gets what, and the error lines.

``reconciler.desired.load`` and ``reconciler.pipeline`` are replaced by fakes installed in
``sys.modules`` (the CLI imports them lazily), so no file is parsed and no store
is contacted.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler.adapters import planfile
from reconciler.cli import cli, main
from reconciler.core import seal as sealing
from reconciler.errors import Diagnostic, StalePlan, StoreError, ValidationFailed
from reconciler.model.config import Config, EntrySpec, TargetSpec
from reconciler.model.observed import Inventory
from reconciler.model.plan import Action, Change, Plan, PlanWarning, summarize
from reconciler.model.result import ApplyResult, Outcome, Status
from reconciler.model.snapshot import ObservedSnapshot
from reconciler.render.progress import Reporter
from tests.support.constants import DOWNLOAD_FP as FP

DOWNLOAD = Change(action=Action.IMAGE_DOWNLOAD, target="local", project="default",
                  reason="declared, not in store", fingerprint=FP, source="images:debian/12",
                  size=1000)
CHANGED = Plan(changes=(DOWNLOAD,), summary=summarize((DOWNLOAD,)))
WARNING = PlanWarning(code="lock.missing", target="local", image="images:debian/12",
                      message="no lock file")

CONFIG = Config(
    path="images.yaml", digest="0" * 64,
    targets={"local": TargetSpec(name="local", url="unix:///s"),
             "prod": TargetSpec(name="prod", url="https://prod:8443")},
    entries=(
        EntrySpec(target="local", source="images:debian/12", remote="images",
                  remote_alias="debian/12"),
        EntrySpec(target="prod", source="images:debian/12", remote="images",
                  remote_alias="debian/12"),
        EntrySpec(target="local", source="images:alpine/3.20", remote="images",
                  remote_alias="alpine/3.20"),
    ),
)


@dataclass
class Fakes:
    """What the fake pipeline returns or raises, and what it was called with."""

    config: Config = CONFIG
    load_error: BaseException | None = None
    plan: Plan = field(default_factory=Plan)
    plan_error: BaseException | None = None
    result: ApplyResult | None = None
    loaded: list[Path] = field(default_factory=list)
    planned: list[dict[str, Any]] = field(default_factory=list)
    applied: list[tuple[Plan, Reporter]] = field(default_factory=list)
    leased: list[list[str]] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    stale: bool = False
    operation_timeouts: list[float | None] = field(default_factory=list)

    def load_config(self, path: Path, environ: Mapping[str, str]) -> Config:
        self.loaded.append(path)
        if self.load_error is not None:
            raise self.load_error
        return self.config

    def make_plan(self, config: Config, *, targets: Sequence[str] | None, allow_empty: bool,
                  environ: Mapping[str, str], now: datetime) -> Plan:
        assert now.tzinfo is not None
        self.planned.append({"targets": targets, "allow_empty": allow_empty})
        if self.plan_error is not None:
            raise self.plan_error
        return self.plan

    def apply_plan(self, config: Config, plan: Plan, *, environ: Mapping[str, str],
                   reporter: Reporter, operation_timeout: float | None = None) -> ApplyResult:
        self.applied.append((plan, reporter))
        self.operation_timeouts.append(operation_timeout)
        if self.result is not None:
            return self.result
        return ApplyResult(outcomes=tuple(
            Outcome(change=c, status=Status.DONE) for c in plan.changes))

    def leases(self, config: Config, targets: Sequence[str], **kw: Any
               ) -> contextlib.AbstractContextManager[None]:
        self.leased.append(list(targets))
        return contextlib.nullcontext()

    def check_fresh(self, config: Config, plan: Plan, name: str) -> None:
        self.checked.append(name)
        if self.stale:
            raise StalePlan(f"the saved plan {name} is stale: the stores changed since it was "
                            "made; nothing was changed; make a new plan\ntarget 'local': "
                            "alias 'deb' moved")


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Iterator[Fakes]:
    f = Fakes()
    load = types.ModuleType("reconciler.desired.load")
    load.load_config = f.load_config  # type: ignore[attr-defined]
    pipeline = types.ModuleType("reconciler.pipeline")
    pipeline.make_plan = f.make_plan  # type: ignore[attr-defined]
    pipeline.apply_plan = f.apply_plan  # type: ignore[attr-defined]
    pipeline.leases = f.leases  # type: ignore[attr-defined]
    pipeline.check_fresh = f.check_fresh  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "reconciler.desired.load", load)
    monkeypatch.setitem(sys.modules, "reconciler.pipeline", pipeline)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal
    yield f


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    def _run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return _run


# -- validate -------------------------------------------------------------------------------

def test_validate_ok(fakes: Fakes, run: Run) -> None:
    assert run("validate") == (0, "images.yaml: valid (2 images, 2 targets)\n", "")
    assert fakes.loaded == [Path("images.yaml")]
    assert fakes.planned == []


def test_validate_other_file_singular(fakes: Fakes, run: Run) -> None:
    fakes.config = CONFIG.model_copy(update={
        "targets": {"local": CONFIG.targets["local"]}, "entries": CONFIG.entries[:1]})
    assert run("validate", "-f", "site/x.yaml") == (
        0, "site/x.yaml: valid (1 image, 1 target)\n", "")
    assert fakes.loaded == [Path("site/x.yaml")]


def test_validation_errors_are_file_line_column_lines(fakes: Fakes, run: Run) -> None:
    fakes.load_error = ValidationFailed([
        Diagnostic("images.yaml", 7, 5, "remote 'nope' is not declared"),
        Diagnostic("images.yaml", 2, 1, "version: must be 1"),
    ])
    code, out, err = run("validate")
    assert (code, out) == (1, "")
    assert err == ("images.yaml:2:1: version: must be 1\n"
                   "images.yaml:7:5: remote 'nope' is not declared\n")


def test_validation_errors_stop_plan_and_apply(fakes: Fakes, run: Run) -> None:
    fakes.load_error = ValidationFailed([Diagnostic("images.yaml", 1, 1, "bad")])
    assert run("plan")[0:2] == (1, "")
    assert run("apply", "--yes")[0:2] == (1, "")
    assert fakes.planned == [] and fakes.applied == []


def test_unreadable_file_is_an_expected_error(fakes: Fakes, run: Run) -> None:
    fakes.load_error = FileNotFoundError(2, "No such file or directory", "images.yaml")
    assert run("validate") == (
        1, "", "incus-images: error: cannot read images.yaml: No such file or directory\n")


# -- plan -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("plan", "flags", "status"), [
    (Plan(), [], 0),
    (Plan(), ["--detailed-exitcode"], 0),
    (CHANGED, [], 0),
    (CHANGED, ["--detailed-exitcode"], 2),
    (CHANGED, ["--fail-on-warnings"], 0),
    (CHANGED.model_copy(update={"warnings": (WARNING,)}), ["--detailed-exitcode"], 2),
    (CHANGED.model_copy(update={"warnings": (WARNING,)}), ["--fail-on-warnings"], 1),
    (CHANGED.model_copy(update={"warnings": (WARNING,)}),
     ["--fail-on-warnings", "--detailed-exitcode"], 1),
    (Plan(warnings=(WARNING,)), ["--fail-on-warnings", "--detailed-exitcode"], 1),
])
def test_plan_exit_status(fakes: Fakes, run: Run, plan: Plan, flags: list[str],
                          status: int) -> None:
    fakes.plan = plan
    code, out, err = run("plan", *flags)
    assert code == status
    assert out.endswith("No changes. The image stores match images.yaml.\n" if not plan.changes
                        else "Plan: 1 to download (1.0 kB to download).\n")
    if status == 1:
        assert err == ("incus-images: error: the plan has 1 warning and --fail-on-warnings "
                       "is set\n")
    else:
        assert err == ""


def test_plan_passes_targets_and_allow_empty(fakes: Fakes, run: Run) -> None:
    run("plan")
    run("plan", "--target", "prod", "--target", "local", "--target", "prod", "--allow-empty")
    assert fakes.planned == [
        {"targets": None, "allow_empty": False},
        {"targets": ["prod", "local"], "allow_empty": True},
    ]


def test_unknown_target(fakes: Fakes, run: Run) -> None:
    assert run("plan", "--target", "x") == (
        1, "", "incus-images: error: unknown target 'x' (the file declares: local, prod)\n")
    assert run("apply", "--yes", "--target", "x")[0] == 1
    assert fakes.planned == []


@pytest.mark.parametrize("fmt", ["json", "markdown", "text"])
def test_plan_formats_go_to_stdout(fakes: Fakes, run: Run, fmt: str) -> None:
    fakes.plan = CHANGED
    code, out, err = run("plan", "--format", fmt)
    assert (code, err) == (0, "")
    if fmt == "json":
        assert Plan.model_validate(json.loads(out)) == CHANGED
    elif fmt == "markdown":
        assert out.startswith("**Plan:** 1 to download")
    else:
        assert "+ image.download  images:debian/12 4f3a2b1c9d8e (1.0 kB)" in out


# -- errors ---------------------------------------------------------------------------------

def test_expected_error_one_line_no_traceback(fakes: Fakes, run: Run) -> None:
    fakes.plan_error = StoreError("local", "connection refused")
    assert run("plan") == (1, "", "incus-images: error: target 'local': connection refused\n")


def test_expected_error_with_debug_has_traceback(fakes: Fakes, run: Run) -> None:
    fakes.plan_error = StoreError("local", "connection refused")
    for argv in (["--debug", "plan"], ["plan", "--debug"]):
        code, _, err = run(*argv)
        assert code == 1
        assert err.startswith("Traceback (most recent call last):")
        assert err.endswith("incus-images: error: target 'local': connection refused\n")


def test_internal_error_exits_3(fakes: Fakes, run: Run) -> None:
    fakes.plan_error = ZeroDivisionError("division by zero")
    assert run("plan") == (3, "", "incus-images: internal error: ZeroDivisionError: division "
                                  "by zero (run with --debug for a traceback)\n")
    code, _, err = run("--debug", "plan")
    assert code == 3
    assert "Traceback (most recent call last):" in err
    assert err.endswith("incus-images: internal error: ZeroDivisionError: division by zero\n")


def test_interrupt_exits_130(fakes: Fakes, run: Run) -> None:
    fakes.plan_error = KeyboardInterrupt()
    assert run("plan") == (130, "", "incus-images: interrupted (SIGINT)\n")


def _signal_in(sig: int, where: str) -> None:
    """Make the fake pipeline's ``where`` send ``sig`` to this process (in-process run:
    the CLI installs its handlers for the run and puts pytest's back after it)."""

    def send(*_a: object, **_kw: object) -> Any:
        os.kill(os.getpid(), sig)
        time.sleep(5)  # the handler raises in the main thread long before this ends
        raise AssertionError("the signal did not interrupt")

    setattr(sys.modules["reconciler.pipeline"], where, send)


@pytest.mark.parametrize(("sig", "code", "name"), [(2, 130, "SIGINT"), (15, 143, "SIGTERM")])
def test_a_real_signal_exits_128_plus_its_number_with_one_line(
        fakes: Fakes, run: Run, sig: int, code: int, name: str) -> None:
    _signal_in(sig, "make_plan")
    assert run("plan") == (code, "", f"incus-images: interrupted ({name})\n")


def test_a_signal_while_apply_plans_says_nothing_was_changed(fakes: Fakes, run: Run) -> None:
    _signal_in(15, "make_plan")
    assert run("apply", "--yes") == (
        143, "", "incus-images: interrupted (SIGTERM): nothing was changed\n")


def test_a_signal_while_applying_says_so_when_apply_did_not(fakes: Fakes, run: Run) -> None:
    """apply_plan itself says where it stopped (test_interrupts); this is the fallback."""
    fakes.plan = CHANGED
    _signal_in(15, "apply_plan")
    code, _, err = run("apply", "--yes")
    assert (code, err) == (
        143, "incus-images: interrupted (SIGTERM): stopped while applying the changes\n")


def test_usage_errors_exit_1_not_2(fakes: Fakes, run: Run) -> None:
    code, out, err = run("plan", "--detailed-exitcod")
    assert (code, out) == (1, "")
    assert "No such option" in err
    assert run("plan", "--format", "yaml")[0] == 1
    assert run("nope")[0] == 1


def test_version_and_help(run: Run) -> None:
    assert run("--version") == (0, "incus-images 0.1.0\n", "")
    for command in ("plan", "apply", "validate"):
        code, out, _ = run(command, "--help")
        assert code == 0
        assert "Exit status:" in out and "Example" in out
    code, out, _ = run()
    assert code == 0 and "Commands:" in out


def test_python_dash_m() -> None:
    done = subprocess.run([sys.executable, "-m", "reconciler", "--version"],
                          capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout) == (0, "incus-images 0.1.0\n")


def test_click_runner_sees_the_same_statuses(fakes: Fakes) -> None:
    fakes.plan = CHANGED
    result = CliRunner().invoke(cli, ["plan", "--detailed-exitcode"])
    assert result.exit_code == 2
    assert CliRunner().invoke(cli, ["plan", "--bogus"]).exit_code == 1


# -- apply ----------------------------------------------------------------------------------

def test_apply_refuses_without_yes_off_a_terminal(fakes: Fakes, run: Run) -> None:
    fakes.plan = CHANGED
    code, out, err = run("apply")
    assert code == 1
    assert out.endswith("Plan: 1 to download (1.0 kB to download).\n")
    assert err == ("incus-images: error: refusing to apply without --yes when not on a "
                   "terminal\n")
    assert fakes.applied == []


def test_apply_with_nothing_to_change_exits_0(fakes: Fakes, run: Run) -> None:
    assert run("apply") == (0, "No changes. The image stores match images.yaml.\n", "")
    assert fakes.applied == []


def test_apply_yes(fakes: Fakes, run: Run) -> None:
    fakes.plan = CHANGED
    code, out, _ = run("apply", "--yes", "--target", "local")
    assert code == 0
    assert out.endswith("Apply complete: 1 done.\n")
    assert "Plan: 1 to download" in out
    assert fakes.planned == [{"targets": ["local"], "allow_empty": False}]
    assert [p for p, _ in fakes.applied] == [CHANGED]
    assert fakes.operation_timeouts == [3600.0]


def test_apply_passes_the_operation_timeout_on(fakes: Fakes, run: Run) -> None:
    fakes.plan = CHANGED
    assert run("apply", "--yes", "--operation-timeout", "7.5")[0] == 0
    assert fakes.operation_timeouts == [7.5]
    code, _, err = run("apply", "--yes", "--operation-timeout", "0")
    assert code == 1 and "--operation-timeout" in err


def test_apply_failure_names_each_failed_change(fakes: Fakes, run: Run) -> None:
    fakes.plan = CHANGED
    fakes.result = ApplyResult(outcomes=(
        Outcome(change=DOWNLOAD, status=Status.FAILED, message="remote 'images': timed out"),))
    code, out, err = run("apply", "--yes")
    assert code == 1
    assert out.endswith("Apply failed: 0 done, 1 failed.\n")
    assert err == ("incus-images: error: local: image.download images:debian/12 4f3a2b1c9d8e "
                   "failed: remote 'images': timed out\n")


def test_apply_json_prints_one_result_document(fakes: Fakes, run: Run) -> None:
    fakes.plan = CHANGED
    code, out, _ = run("apply", "--yes", "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["ok"] is True and doc["outcomes"][0]["change"]["action"] == "image.download"


@pytest.mark.parametrize(("answer", "status"), [("y\n", 0), ("yes\n", 0), ("n\n", 1),
                                               ("\n", 1), ("", 1)])
def test_apply_asks_on_a_terminal(fakes: Fakes, run: Run, monkeypatch: pytest.MonkeyPatch,
                                  answer: str, status: int) -> None:
    fakes.plan = CHANGED
    monkeypatch.setattr(sys, "stdin", Tty(answer))
    code, out, err = run("apply")
    assert code == status
    assert "Plan: 1 to download" in out
    assert err.startswith("Apply these changes? [y/N] ")
    if status:
        assert err.endswith("incus-images: error: apply cancelled\n")
        assert fakes.applied == []
    else:
        assert len(fakes.applied) == 1


def test_apply_takes_the_leases_of_the_targets_it_works_on(fakes: Fakes, run: Run) -> None:
    fakes.plan = CHANGED
    run("apply", "--yes")
    run("apply", "--yes", "--target", "prod")
    assert fakes.leased == [["local", "prod"], ["prod"]]
    run("plan")
    assert len(fakes.leased) == 2  # plan takes no lease


# -- saved plans: plan --out, show, apply PLAN ---------------------------------------------

SNAPSHOT = ObservedSnapshot(project="default",
                            inventory=Inventory(owner="incus-images", project="default"))
SAVEABLE = CHANGED.model_copy(update={"desired_digest": CONFIG.digest,
                                      "observed": {"local": SNAPSHOT}})


def saved(fakes: Fakes, run: Run, tmp_path: Path, plan: Plan = SAVEABLE) -> Path:
    fakes.plan = plan
    out = tmp_path / "plan.json"
    code, _, err = run("plan", "--out", str(out))
    assert code == 0
    assert err == (f"incus-images: saved the plan to {out}; apply exactly this plan with: "
                   f"incus-images apply -f images.yaml {out}\n")
    return out


def test_plan_out_writes_a_sealed_plan_and_prints_as_usual(fakes: Fakes, run: Run,
                                                         tmp_path: Path) -> None:
    fakes.plan = SAVEABLE
    out = tmp_path / "plan.json"
    code, stdout, _ = run("plan", "--out", str(out), "--format", "json")
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc == json.loads(stdout)
    assert doc["digest"] == sealing.digest_of(doc)
    assert planfile.load(out) == sealing.seal(SAVEABLE)


@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_show_renders_a_saved_plan(fakes: Fakes, run: Run, tmp_path: Path, fmt: str) -> None:
    out = saved(fakes, run, tmp_path)
    fakes.loaded.clear()
    code, stdout, err = run("show", str(out), "--format", fmt)
    assert (code, err) == (0, "")
    if fmt == "json":
        assert stdout == out.read_text()
    elif fmt == "markdown":
        assert stdout.startswith("Saved plan of owner 'incus-images'")
        assert "**Plan:** 1 to download" in stdout
    else:
        assert stdout.startswith("Saved plan of owner 'incus-images'")
        assert "+ image.download  images:debian/12 4f3a2b1c9d8e (1.0 kB)" in stdout
    assert fakes.loaded == []  # show reads no desired-state file and contacts nothing


@pytest.mark.parametrize(("content", "message"), [
    (b'{"format_version": "1", "chan', "is not a saved plan: invalid JSON"),
    (b'{"a": 1}', "is not a saved plan of format version 1"),
    (None, "has been edited since it was saved"),
])
def test_show_and_apply_reject_bad_files(fakes: Fakes, run: Run, tmp_path: Path,
                                         content: bytes | None, message: str) -> None:
    out = saved(fakes, run, tmp_path)
    out.write_bytes(content if content is not None
                    else out.read_bytes().replace(b'"images:debian/12"', b'"images:evil/1"'))
    for argv in (["show", str(out)], ["apply", str(out)]):
        code, stdout, err = run(*argv)
        assert (code, stdout) == (1, "")
        assert err.startswith(f"incus-images: error: {out} ") and message in err
        assert err.count("\n") == 1 and "Traceback" not in err
    assert fakes.applied == []


def test_apply_plan_applies_exactly_it_without_asking(fakes: Fakes, run: Run,
                                                      tmp_path: Path) -> None:
    out = saved(fakes, run, tmp_path)
    fakes.plan = Plan()  # a re-plan would find nothing: apply PLAN must not re-plan
    code, stdout, _ = run("apply", str(out))  # off a terminal, without --yes
    assert code == 0
    assert "Plan: 1 to download" in stdout and stdout.endswith("Apply complete: 1 done.\n")
    assert [p for p, _ in fakes.applied] == [sealing.seal(SAVEABLE)]
    assert len(fakes.planned) == 1 and fakes.checked == [str(out)]
    assert fakes.leased[-1] == ["local"]


def test_apply_plan_refuses_when_stale_and_changes_nothing(fakes: Fakes, run: Run,
                                                           tmp_path: Path) -> None:
    out = saved(fakes, run, tmp_path)
    fakes.stale = True
    code, _, err = run("apply", str(out))
    assert code == 1
    assert err.startswith(f"incus-images: error: the saved plan {out} is stale")
    assert fakes.applied == []


def test_apply_plan_refuses_when_the_file_changed(fakes: Fakes, run: Run,
                                                  tmp_path: Path) -> None:
    out = saved(fakes, run, tmp_path)
    fakes.config = CONFIG.model_copy(update={"digest": "1" * 64})
    code, _, err = run("apply", str(out))
    assert code == 1 and "is stale: images.yaml has changed since the plan was made" in err
    assert fakes.applied == [] and fakes.checked == []


def test_apply_plan_with_target_is_an_error(fakes: Fakes, run: Run, tmp_path: Path) -> None:
    out = saved(fakes, run, tmp_path)
    assert run("apply", "--target", "local", str(out)) == (
        1, "", "incus-images: error: --target cannot be used with a saved plan: the plan "
               "already says which targets it changes\n")
    assert fakes.applied == []


def test_apply_plan_without_changes_contacts_nothing(fakes: Fakes, run: Run,
                                                     tmp_path: Path) -> None:
    out = saved(fakes, run, tmp_path, Plan(desired_digest=CONFIG.digest, observed={}))
    assert run("apply", str(out)) == (0, "No changes. The image stores match images.yaml.\n",
                                      "")
    assert fakes.applied == [] and fakes.leased == [] and fakes.checked == []
