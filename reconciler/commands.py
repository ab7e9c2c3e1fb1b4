"""Command bodies: plain functions taking their collaborators and keyword arguments,
returning an exit status.

The click layer (``reconciler.cli``) only parses and hands over, with the run's
:class:`~reconciler.services.Services` (the real adapters; tests pass fakes); it
also maps whatever these raise to exit codes, in one place.  Plans and results go
to stdout; progress, prompts and notes to stderr.

Each command that reaches the stores opens them once (``pipeline.opened_stores``)
and one remote reader, uses them for every stage (leases, plan, apply) and closes
them when it ends.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TextIO

import click

from reconciler.apply.lease import LeaseRecord, Leases
from reconciler.core.freshness import check_matches, touched
from reconciler.desired.load import load_config
from reconciler.errors import ChangesFailed, IncusImagesError, Interrupted, Refused
from reconciler.model.config import Config
from reconciler.model.lock import Locks
from reconciler.model.plan import Plan
from reconciler.model.result import ApplyResult
from reconciler.ports import ImageStore, RemoteReader
from reconciler.redact import scrub
from reconciler.render import PlanFormat, render_plan, terminal_safe
from reconciler.render import json as json_render
from reconciler.render import text as text_render
from reconciler.render.labels import change_label
from reconciler.render.progress import make_reporter
from reconciler.render.saved import describe
from reconciler.render.units import plural
from reconciler.services import Services


def _lazy(name: str) -> ModuleType:
    """Module ``name``, run on first attribute access (``importlib.util.LazyLoader``)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.loader is not None
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


if TYPE_CHECKING:
    from reconciler import pipeline
    from reconciler.adapters import planfile
    from reconciler.pipeline import opened_stores
else:  # what reaches the stores is loaded when a command first uses it: `--help`,
    # `--version` and `validate` start without it (python -X importtime)
    pipeline = _lazy("reconciler.pipeline")
    planfile = _lazy("reconciler.adapters.planfile")

    def opened_stores(*args: Any, **kwargs: Any) -> Any:
        return pipeline.opened_stores(*args, **kwargs)

PROG = "incus-images"
EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
DEFAULT_LOCK_TIMEOUT = 300.0
DEFAULT_LEASE_TTL = 60.0


def _err(line: str) -> None:
    """Print one error or note line: never a URL's credentials, never a raw control character."""
    click.echo(terminal_safe(scrub(line)), err=True)


def _load(path: Path, services: Services) -> Config:
    try:
        return load_config(path, services.environ)
    except OSError as exc:
        raise IncusImagesError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _leases(config: Config, targets: Sequence[str], stores: pipeline.Stores, *,
            timeout: float, ttl: float) -> Leases:
    """The leases an apply holds on ``targets`` while it plans and applies (stderr notes)."""
    def waiting(target: str, holder: LeaseRecord) -> None:
        _err(f"{PROG}: target {target!r} is locked by {holder.describe()}; "
             f"waiting up to {timeout:g}s (--lock-timeout)")

    return pipeline.leases(config, targets, stores, timeout=timeout, ttl=ttl, on_wait=waiting,
                           on_note=lambda text: _err(f"{PROG}: note: {text}"))


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


# -- command bodies -------------------------------------------------------------------------

def validate_command(services: Services, *, file: Path) -> int:
    config = _load(file, services)
    images = {(e.source, e.type, e.architecture, e.fingerprint) for e in config.entries}
    click.echo(f"{file}: valid ({plural(len(images), 'image')}, "
               f"{plural(len(config.targets), 'target')})")
    return EXIT_OK


def plan_command(
    services: Services, *, file: Path, targets: Sequence[str], fmt: PlanFormat,
    detailed_exitcode: bool, fail_on_warnings: bool, allow_empty: bool, out: Path | None = None,
) -> int:
    config = _load(file, services)
    names = config.check_targets(targets)
    with opened_stores(config, services) as stores, services.reader() as reader:
        plan = pipeline.make_plan(config, stores, reader, targets=list(names) or None,
                                  allow_empty=allow_empty, now=services.clock())
    if out is not None:
        plan = planfile.save(plan, out)
        _err(f"{PROG}: saved the plan to {out}; apply exactly this plan with: "
             f"{PROG} apply -f {file} {out}")
    click.echo(render_plan(plan, fmt, file_name=str(file)), nl=False)
    _step_summary(services, lambda: render_plan(plan, "markdown", file_name=str(file)))
    if fail_on_warnings and plan.warnings:
        raise Refused(f"the plan has {plural(len(plan.warnings), 'warning')} "
                      "and --fail-on-warnings is set")
    return EXIT_CHANGES if detailed_exitcode and plan.has_changes else EXIT_OK


def _confirm(question: str, stdin: TextIO | None) -> bool:
    """Ask on stderr, read one line from ``stdin``; only ``y`` or ``yes`` agrees (EOF is no)."""
    click.echo(f"{question} [y/N] ", nl=False, err=True)
    answer = stdin.readline() if stdin is not None else ""
    return answer.strip().lower() in ("y", "yes")


def _is_tty(stdin: TextIO | None) -> bool:
    try:
        return stdin is not None and stdin.isatty()
    except (OSError, ValueError):
        return False


def apply_command(
    services: Services, *, file: Path, targets: Sequence[str], yes: bool, allow_empty: bool,
    fmt: PlanFormat, plan_file: Path | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT, lease_ttl: float = DEFAULT_LEASE_TTL,
    operation_timeout: float | None = None,
) -> int:
    """Plan and apply under the targets' leases, or apply a saved plan (``plan_file``).

    The leases, the plan's observation and apply use the same stores, opened once.
    """
    if plan_file is not None:
        if targets:
            raise IncusImagesError("--target cannot be used with a saved plan: the plan "
                                   "already says which targets it changes")
        return _apply_saved(services, file=file, plan_file=plan_file, fmt=fmt,
                            lock_timeout=lock_timeout, lease_ttl=lease_ttl,
                            operation_timeout=operation_timeout)
    config = _load(file, services)
    names = config.check_targets(targets)
    with opened_stores(config, services, operation_timeout=operation_timeout) as stores, \
            services.reader() as reader, _until_applied() as stage, \
            _leases(config, names or sorted(config.targets), stores, timeout=lock_timeout,
                    ttl=lease_ttl):
        plan = pipeline.make_plan(config, stores, reader, targets=list(names) or None,
                                  allow_empty=allow_empty, now=services.clock())
        shown = False
        if fmt == "text" or not plan.has_changes or not yes:
            click.echo(render_plan(plan, fmt, file_name=str(file)), nl=False)
            shown = True
        if not plan.has_changes:
            return EXIT_OK
        if not yes:
            if not _is_tty(services.stdin):
                raise Refused("refusing to apply without --yes when not on a terminal")
            if not _confirm("Apply these changes?", services.stdin):
                raise Refused("apply cancelled")
        if shown and fmt == "text":
            click.echo()
        return _apply_and_report(config, plan, stores, reader, stage, fmt)


def _apply_saved(
    services: Services, *, file: Path, plan_file: Path, fmt: PlanFormat, lock_timeout: float,
    lease_ttl: float, operation_timeout: float | None = None,
) -> int:
    """Apply exactly a saved plan: no re-planning, no question (it was reviewed).

    Connection details and credentials come from ``file`` and the environment.
    Under the leases, every target it changes is observed again first; if
    anything it recorded moved, it refuses (stale) and changes nothing.
    """
    plan = planfile.load(plan_file)
    config = _load(file, services)
    name = str(plan_file)
    check_matches(plan, config, name)
    if not plan.has_changes:
        click.echo(render_plan(plan, fmt, file_name=str(file)), nl=False)
        return EXIT_OK
    with opened_stores(config, services, operation_timeout=operation_timeout) as stores, \
            services.reader() as reader, _until_applied() as stage, \
            _leases(config, touched(plan), stores, timeout=lock_timeout,
                    ttl=lease_ttl):
        pipeline.check_fresh(config, plan, name, stores)
        if fmt == "text":
            click.echo(render_plan(plan, fmt, file_name=str(file)))
        return _apply_and_report(config, plan, stores, reader, stage, fmt)


def _apply_and_report(config: Config, plan: Plan, stores: Mapping[str, ImageStore],
                      reader: RemoteReader, stage: _Stage, fmt: PlanFormat) -> int:
    """Apply ``plan`` on the opened stores, telling ``stage`` when it runs, and report."""
    stage.applying()
    result = pipeline.apply_plan(config, plan, stores, reader,
                                 reporter=make_reporter(sys.stderr))
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


def show_command(services: Services, *, plan_file: Path, fmt: PlanFormat) -> int:
    """Render a saved plan (checked like one about to be applied, but nothing is contacted)."""
    plan = planfile.load(plan_file)
    if fmt == "json":
        click.echo(render_plan(plan, "json"), nl=False)
        return EXIT_OK
    made_from = plan.provenance.path if plan.provenance else "its desired-state file"
    click.echo(terminal_safe(describe(plan)) + "\n")
    click.echo(render_plan(plan, fmt, file_name=made_from), nl=False)
    return EXIT_OK


def _step_summary(services: Services, markdown: Callable[[], str]) -> None:
    """Append ``markdown()`` to ``$GITHUB_STEP_SUMMARY`` when it is set (a failure is a note)."""
    from reconciler.adapters import stepsummary

    env = services.environ
    if env.get(stepsummary.VARIABLE):
        problem = stepsummary.append(markdown(), env)
        if problem:
            _err(f"{PROG}: note: {problem}")


def lock_command(services: Services, *, file: Path, upgrade: bool,
                 sources: Sequence[str]) -> int:
    from reconciler.render.lock import render_outcome

    config = _load(file, services)
    with opened_stores(config, services) as stores, services.reader() as reader:
        outcome = pipeline.run_lock(config, upgrade=upgrade, sources=sources, reader=reader,
                                    connect=stores.connect)
    click.echo(render_outcome(outcome), nl=False)
    return EXIT_OK


def diff_command(services: Services, *, file: Path, base: str, head: str | None, fmt: str,
                 detailed_exitcode: bool) -> int:
    from reconciler.pipeline import run_diff
    from reconciler.render import diff as diff_render

    def plan_head(config: Config, locks: Locks | None) -> Plan:
        with opened_stores(config, services) as stores, services.reader() as reader:
            return pipeline.make_plan(config, stores, reader, targets=None, allow_empty=False,
                                      now=services.clock(), locks=locks)

    report = run_diff(file, base=base, head=head, environ=services.environ, plan=plan_head)
    markdown = diff_render.render_markdown(report)
    click.echo(terminal_safe(markdown if fmt == "markdown" else diff_render.render_text(report)),
               nl=False)
    _step_summary(services, lambda: markdown)
    return EXIT_CHANGES if detailed_exitcode and report.plan.has_changes else EXIT_OK


def status_command(services: Services, *, file: Path, fmt: str, offline: bool) -> int:
    from reconciler.adapters.lockfile import read_locks
    from reconciler.render import status as status_render

    config = _load(file, services)
    with opened_stores(config, services) as stores, services.reader() as reader:
        found = pipeline.gather_status(config, offline=offline, reader=reader,
                                       connect=stores.connect, locks=read_locks(config.path))
    for note in found.notes:
        _err(f"{PROG}: note: {note}")
    renderer = status_render.render_json if fmt == "json" else status_render.render_text
    click.echo(terminal_safe(renderer(found.report)), nl=False)
    return EXIT_OK
