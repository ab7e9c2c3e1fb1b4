"""Command bodies: plain functions taking keyword arguments and returning an exit status.

The click layer (``reconciler.cli``) only parses and hands over; it also maps
whatever these raise to exit codes, in one place.  Plans and results go to
stdout; progress, prompts and notes to stderr.

``reconciler.desired.load`` and ``reconciler.pipeline`` are imported inside the functions
that use them so that ``--help``, ``--version`` and tests that replace them do not
import the network stack.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler.adapters import planfile
from reconciler.core.freshness import check_matches, touched
from reconciler.errors import ChangesFailed, IncusImagesError, Interrupted, Refused
from reconciler.model.plan import Plan
from reconciler.model.result import ApplyResult
from reconciler.redact import scrub
from reconciler.render import PlanFormat, render_plan, terminal_safe
from reconciler.render import json as json_render
from reconciler.render import text as text_render
from reconciler.render.labels import change_label
from reconciler.render.progress import Reporter, make_reporter
from reconciler.render.saved import describe
from reconciler.render.units import plural

if TYPE_CHECKING:
    from reconciler.apply.lease import LeaseRecord
    from reconciler.model.config import Config
    from reconciler.model.lock import Locks

PROG = "incus-images"
EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
DEFAULT_LOCK_TIMEOUT = 300.0
DEFAULT_LEASE_TTL = 60.0


def _err(line: str) -> None:
    """Print one error or note line: never a URL's credentials, never a raw control character."""
    click.echo(terminal_safe(scrub(line)), err=True)


# -- the pipeline, imported lazily ----------------------------------------------------------

def _environ() -> Mapping[str, str]:
    return os.environ


def _load(path: Path) -> Config:
    from reconciler.desired.load import load_config

    try:
        config: Config = load_config(path, _environ())
    except OSError as exc:
        raise IncusImagesError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return config


def _make_plan(config: Config, targets: Sequence[str], *, allow_empty: bool) -> Plan:
    from reconciler.pipeline import make_plan

    plan: Plan = make_plan(config, targets=list(targets) or None, allow_empty=allow_empty,
                           environ=_environ(), now=datetime.now(UTC))
    return plan


def _apply_plan(config: Config, plan: Plan, *, reporter: Reporter,
                operation_timeout: float | None = None) -> ApplyResult:
    from reconciler.pipeline import apply_plan

    result: ApplyResult = apply_plan(config, plan, environ=_environ(), reporter=reporter,
                                     operation_timeout=operation_timeout)
    return result


def _leases(config: Config, targets: Sequence[str], *, timeout: float, ttl: float
            ) -> AbstractContextManager[object]:
    """The leases an apply holds on ``targets`` while it plans and applies (stderr notes)."""
    from reconciler.pipeline import leases

    def waiting(target: str, holder: LeaseRecord) -> None:
        _err(f"{PROG}: target {target!r} is locked by {holder.describe()}; "
             f"waiting up to {timeout:g}s (--lock-timeout)")

    held: AbstractContextManager[object] = leases(
        config, targets, timeout=timeout, ttl=ttl, on_wait=waiting,
        on_note=lambda text: _err(f"{PROG}: note: {text}"))
    return held


class _Stage:
    """How far an apply got, for the line an interrupt prints when apply did not say."""

    def __init__(self) -> None:
        self.progress = "nothing was changed"

    def applying(self) -> None:
        self.progress = "stopped while applying the changes"

    def applied(self) -> None:
        self.progress = "stopped after the last change"


@contextmanager
def _until_applied() -> Iterator[_Stage]:
    """Complete an :class:`Interrupted` that passes with where the apply was."""
    stage = _Stage()
    try:
        yield stage
    except Interrupted as exc:
        exc.progress = exc.progress or stage.progress
        raise


def _check_fresh(config: Config, plan: Plan, name: str) -> None:
    from reconciler.pipeline import check_fresh

    check_fresh(config, plan, name)


# -- command bodies -------------------------------------------------------------------------

def validate_command(*, file: Path) -> int:
    config = _load(file)
    images = {(e.source, e.type, e.architecture, e.fingerprint) for e in config.entries}
    click.echo(f"{file}: valid ({plural(len(images), 'image')}, "
               f"{plural(len(config.targets), 'target')})")
    return EXIT_OK


def plan_command(
    *, file: Path, targets: Sequence[str], fmt: PlanFormat, detailed_exitcode: bool,
    fail_on_warnings: bool, allow_empty: bool, out: Path | None = None,
) -> int:
    config = _load(file)
    plan = _make_plan(config, config.check_targets(targets), allow_empty=allow_empty)
    if out is not None:
        plan = planfile.save(plan, out)
        _err(f"{PROG}: saved the plan to {out}; apply exactly this plan with: "
             f"{PROG} apply -f {file} {out}")
    click.echo(render_plan(plan, fmt, file_name=str(file)), nl=False)
    _step_summary(lambda: render_plan(plan, "markdown", file_name=str(file)))
    if fail_on_warnings and plan.warnings:
        raise Refused(f"the plan has {plural(len(plan.warnings), 'warning')} "
                      "and --fail-on-warnings is set")
    return EXIT_CHANGES if detailed_exitcode and plan.has_changes else EXIT_OK


def _confirm(question: str) -> bool:
    """Ask on stderr, read one line from stdin; only ``y`` or ``yes`` agrees (EOF is no)."""
    click.echo(f"{question} [y/N] ", nl=False, err=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (OSError, ValueError):
        return False


def apply_command(
    *, file: Path, targets: Sequence[str], yes: bool, allow_empty: bool,
    fmt: PlanFormat, plan_file: Path | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT, lease_ttl: float = DEFAULT_LEASE_TTL,
    operation_timeout: float | None = None,
) -> int:
    """Plan and apply under the targets' leases, or apply a saved plan (``plan_file``)."""
    if plan_file is not None:
        if targets:
            raise IncusImagesError("--target cannot be used with a saved plan: the plan "
                                   "already says which targets it changes")
        return _apply_saved(file=file, plan_file=plan_file, fmt=fmt,
                            lock_timeout=lock_timeout, lease_ttl=lease_ttl,
                            operation_timeout=operation_timeout)
    config = _load(file)
    names = config.check_targets(targets)
    with _until_applied() as stage, \
            _leases(config, names or sorted(config.targets), timeout=lock_timeout,
                    ttl=lease_ttl):
        plan = _make_plan(config, names, allow_empty=allow_empty)
        shown = False
        if fmt == "text" or not plan.has_changes or not yes:
            click.echo(render_plan(plan, fmt, file_name=str(file)), nl=False)
            shown = True
        if not plan.has_changes:
            return EXIT_OK
        if not yes:
            if not _stdin_is_tty():
                raise Refused("refusing to apply without --yes when not on a terminal")
            if not _confirm("Apply these changes?"):
                raise Refused("apply cancelled")
        if shown and fmt == "text":
            click.echo()
        stage.applying()
        result = _apply_plan(config, plan, reporter=make_reporter(sys.stderr),
                             operation_timeout=operation_timeout)
        stage.applied()
        return _report(result, fmt)


def _apply_saved(
    *, file: Path, plan_file: Path, fmt: PlanFormat, lock_timeout: float, lease_ttl: float,
    operation_timeout: float | None = None,
) -> int:
    """Apply exactly a saved plan: no re-planning, no question (it was reviewed).

    Connection details and credentials come from ``file`` and the environment.
    Under the leases, every target it changes is observed again first; if
    anything it recorded moved, it refuses (stale) and changes nothing.
    """
    plan = planfile.load(plan_file)
    config = _load(file)
    name = str(plan_file)
    check_matches(plan, config, name)
    if not plan.has_changes:
        click.echo(render_plan(plan, fmt, file_name=str(file)), nl=False)
        return EXIT_OK
    with _until_applied() as stage, \
            _leases(config, touched(plan), timeout=lock_timeout, ttl=lease_ttl):
        _check_fresh(config, plan, name)
        if fmt == "text":
            click.echo(render_plan(plan, fmt, file_name=str(file)))
        stage.applying()
        result = _apply_plan(config, plan, reporter=make_reporter(sys.stderr),
                             operation_timeout=operation_timeout)
        stage.applied()
        return _report(result, fmt)


def _report(result: ApplyResult, fmt: PlanFormat) -> int:
    """Print an apply result; every failed change is an error line (exit 1)."""
    renderer = json_render.render_result if fmt == "json" else text_render.render_result
    click.echo(terminal_safe(renderer(result)), nl=False)
    if not result.ok:
        raise ChangesFailed([
            f"{o.change.target}: {change_label(o.change)} failed: {o.message or 'no reason given'}"
            for o in result.failed
        ])
    return EXIT_OK


def show_command(*, plan_file: Path, fmt: PlanFormat) -> int:
    """Render a saved plan (checked like one about to be applied, but nothing is contacted)."""
    plan = planfile.load(plan_file)
    if fmt == "json":
        click.echo(render_plan(plan, "json"), nl=False)
        return EXIT_OK
    made_from = plan.provenance.path if plan.provenance else "its desired-state file"
    click.echo(terminal_safe(describe(plan)) + "\n")
    click.echo(render_plan(plan, fmt, file_name=made_from), nl=False)
    return EXIT_OK


def _step_summary(markdown: Callable[[], str]) -> None:
    """Append ``markdown()`` to ``$GITHUB_STEP_SUMMARY`` when it is set (a failure is a note)."""
    from reconciler.adapters import stepsummary

    env = _environ()
    if env.get(stepsummary.VARIABLE):
        problem = stepsummary.append(markdown(), env)
        if problem:
            _err(f"{PROG}: note: {problem}")


def lock_command(*, file: Path, upgrade: bool, sources: Sequence[str]) -> int:
    from reconciler.pipeline import default_connect, default_reader, run_lock
    from reconciler.render.lock import render_outcome

    config = _load(file)
    outcome = run_lock(config, upgrade=upgrade, sources=sources,
                       reader=default_reader(), connect=default_connect)
    click.echo(render_outcome(outcome), nl=False)
    return EXIT_OK


def diff_command(*, file: Path, base: str, head: str | None, fmt: str,
                 detailed_exitcode: bool) -> int:
    from reconciler.pipeline import make_plan, run_diff
    from reconciler.render import diff as diff_render

    def plan_head(config: Config, locks: Locks | None) -> Plan:
        plan: Plan = make_plan(config, targets=None, allow_empty=False, environ=_environ(),
                               now=datetime.now(UTC), locks=locks)
        return plan

    report = run_diff(file, base=base, head=head, environ=_environ(), plan=plan_head)
    markdown = diff_render.render_markdown(report)
    click.echo(terminal_safe(markdown if fmt == "markdown" else diff_render.render_text(report)),
               nl=False)
    _step_summary(lambda: markdown)
    return EXIT_CHANGES if detailed_exitcode and report.plan.has_changes else EXIT_OK


def status_command(*, file: Path, fmt: str, offline: bool) -> int:
    from reconciler.adapters.lockfile import read_locks
    from reconciler.pipeline import default_connect, default_reader, gather_status
    from reconciler.render import status as status_render

    config = _load(file)
    found = gather_status(config, offline=offline, reader=default_reader(),
                          connect=default_connect, locks=read_locks(config.path))
    for note in found.notes:
        _err(f"{PROG}: note: {note}")
    renderer = status_render.render_json if fmt == "json" else status_render.render_text
    click.echo(terminal_safe(renderer(found.report)), nl=False)
    return EXIT_OK
