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
from typing import TYPE_CHECKING, Any, TextIO

import click

from reconciler import interrupts
from reconciler.apply.lease import LeaseRecord, Leases
from reconciler.core.freshness import check_matches, touched
from reconciler.desired.load import load_config
from reconciler.errors import (
    ChangesFailed,
    Diagnostic,
    IncusImagesError,
    Interrupted,
    Refused,
    TargetsFailed,
)
from reconciler.model.config import Config
from reconciler.model.lock import Locks
from reconciler.model.observed import TargetState
from reconciler.model.plan import Plan
from reconciler.model.result import ApplyResult
from reconciler.ports import DEFAULT_PARALLELISM, ImageStore, RemoteReader
from reconciler.redact import scrub
from reconciler.render import PlanFormat, colour, render_plan, terminal_safe
from reconciler.render import json as json_render
from reconciler.render import text as text_render
from reconciler.render.labels import change_label
from reconciler.render.progress import reporting
from reconciler.render.saved import describe
from reconciler.render.units import plural
from reconciler.services import Services


class _Lazy:
    """Module ``name``, imported on first attribute access.

    A stand-in object, not a module in ``sys.modules``: a lazily executed module in
    ``sys.modules`` would run whenever anything scans them (``inspect.getmodule``,
    which pydantic calls while it builds models), in the middle of another import.
    """

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)


if TYPE_CHECKING:
    from reconciler import pipeline
    from reconciler.adapters import planfile
    from reconciler.apply.executor import Halted
    from reconciler.pipeline import opened_stores
else:  # what reaches the stores is loaded when a command first uses it: `--help`,
    # `--version` and `validate` start without it (python -X importtime)
    pipeline = _Lazy("reconciler.pipeline")
    planfile = _Lazy("reconciler.adapters.planfile")

    def opened_stores(*args: Any, **kwargs: Any) -> Any:
        return pipeline.opened_stores(*args, **kwargs)

PROG = "incus-images"
EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
DEFAULT_LOCK_TIMEOUT = 300.0
DEFAULT_LEASE_TTL = 60.0


def _err(line: str) -> None:
    """Print one error or note line: never a URL's credentials, never a raw control character."""
    click.echo(terminal_safe(scrub(line)), err=True)


def _out(text: str, fmt: str, services: Services, *, nl: bool = False) -> None:
    """Print ``text`` (already terminal-safe) on stdout, coloured when it is a text plan or
    result going to a terminal that wants colour (:func:`reconciler.render.colour.wanted`)."""
    if fmt == "text" and colour.wanted(sys.stdout, services.environ):
        text = colour.paint(text)
    click.echo(text, nl=nl)


def _load(path: Path, services: Services) -> Config:
    try:
        return load_config(path, services.environ)
    except OSError as exc:
        raise IncusImagesError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _leases(config: Config, targets: Sequence[str], stores: pipeline.Stores, *,
            timeout: float, ttl: float, set_aside_failed: bool = False) -> Leases:
    """The leases an apply holds on ``targets`` while it plans and applies (stderr notes)."""
    def waiting(target: str, holder: LeaseRecord) -> None:
        _err(f"{PROG}: target {target!r} is locked by {holder.describe()}; "
             f"waiting up to {timeout:g}s (--lock-timeout)")

    return pipeline.leases(config, targets, stores, timeout=timeout, ttl=ttl, on_wait=waiting,
                           on_note=lambda text: _err(f"{PROG}: note: {text}"),
                           set_aside_failed=set_aside_failed)


def _still_reading(targets: Sequence[str], waited: float) -> None:
    """The note of a slow observation (stderr): which targets, how long so far."""
    which = ", ".join(repr(t) for t in targets)
    _err(f"{PROG}: note: still reading target{'s' if len(targets) > 1 else ''} {which} "
         f"after {waited:g} s (a daemon sends its image list only once it is whole: "
         "thousands of images take a while)")


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
    """Check the file; an unset ``${VAR}`` used only for credentials is a note (stderr)."""
    notes: list[Diagnostic] = []
    try:
        config = load_config(file, services.environ, notes=notes)
    except OSError as exc:
        raise IncusImagesError(f"cannot read {file}: {exc.strerror or exc}") from exc
    for note in notes:
        _err(str(note))
    images = {(e.source, e.type, e.architecture, e.fingerprint) for e in config.entries}
    click.echo(f"{file}: valid ({plural(len(images), 'image')}, "
               f"{plural(len(config.targets), 'target')})")
    return EXIT_OK


def plan_command(
    services: Services, *, file: Path, targets: Sequence[str], fmt: PlanFormat,
    detailed_exitcode: bool, fail_on_warnings: bool, allow_empty: bool, out: Path | None = None,
    verify: bool = False,
    parallelism: int = DEFAULT_PARALLELISM,
) -> int:
    """Plan every target (``parallelism`` at a time) and print the plan; a target that
    cannot be observed is an error of its own (exit 1) after the others' plan."""
    config = _load(file, services)
    names = config.check_targets(targets)
    with opened_stores(config, services) as stores, services.reader() as reader:
        plan = pipeline.make_plan(config, stores, reader, targets=list(names) or None,
                                  allow_empty=allow_empty, now=services.clock(), verify=verify,
                                  parallelism=parallelism, on_slow=_still_reading)
    _reach_notes(plan)
    if out is not None:
        plan = planfile.save(plan, out)
        _err(f"{PROG}: saved the plan to {out}; apply exactly this plan with: "
             f"{PROG} apply -f {file} {out}")
    _out(render_plan(plan, fmt, file_name=str(file)), fmt, services)
    _step_summary(services, lambda: render_plan(plan, "markdown", file_name=str(file)))
    _raise_failed_targets(plan)
    if fail_on_warnings and plan.warnings:
        raise Refused(f"the plan has {plural(len(plan.warnings), 'warning')} "
                      "and --fail-on-warnings is set")
    return EXIT_CHANGES if detailed_exitcode and plan.has_changes else EXIT_OK


def _reach_notes(plan: Plan) -> None:
    """A note on stderr for each target declared with ``urls:``: the address used."""
    for target, reach in sorted((plan.targets or {}).items()):
        if reach.error is None:
            _err(f"{PROG}: note: {reach.line(target)}")


def _raise_failed_targets(plan: Plan) -> None:
    """Raise :class:`TargetsFailed` when some targets could not be observed."""
    failed = plan.failed_targets
    if failed:
        raise TargetsFailed([*failed.values(),
                             f"not planned: {', '.join(repr(t) for t in failed)} "
                             f"({plural(len(failed), 'target')} failed; the others were "
                             "planned)"])


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
    operation_timeout: float | None = None, verify: bool = False,
    parallelism: int = DEFAULT_PARALLELISM, allow_degraded: bool = False,
) -> int:
    """Plan and apply under the targets' leases, or apply a saved plan (``plan_file``).

    The leases, the plan's observation and apply use the same stores, opened once.
    ``verify``: the plan checks this owner's images through every member first.
    ``parallelism`` targets are observed and applied at once.  Every target is
    observed before its lease is written (``pipeline.observe_first``); a target that
    cannot be observed or leased fails alone: the others are planned and applied,
    and the run exits 1 naming it.
    """
    if plan_file is not None:
        if targets:
            raise IncusImagesError("--target cannot be used with a saved plan: the plan "
                                   "already says which targets it changes")
        if verify:
            raise IncusImagesError("--verify cannot be used with a saved plan: verify when "
                                   "making it (plan --verify --out PLAN)")
        return _apply_saved(services, file=file, plan_file=plan_file, fmt=fmt,
                            lock_timeout=lock_timeout, lease_ttl=lease_ttl,
                            operation_timeout=operation_timeout, parallelism=parallelism,
                            allow_degraded=allow_degraded)
    config = _load(file, services)
    names = config.check_targets(targets)
    chosen = names or sorted(config.targets)
    with opened_stores(config, services, operation_timeout=operation_timeout) as stores, \
            services.reader() as reader, _until_applied() as stage, \
            _observed_then(config, chosen, stores, timeout=lock_timeout, ttl=lease_ttl,
                           parallelism=parallelism, set_aside_failed=True) as (failed, halted):
        seen: dict[str, TargetState] = {}
        plan = pipeline.make_plan(config, stores, reader, targets=list(names) or None,
                                  allow_empty=allow_empty, now=services.clock(), verify=verify,
                                  parallelism=parallelism, failed=failed, seen=seen,
                                  on_slow=_still_reading)
        _reach_notes(plan)
        shown = False
        if fmt == "text" or not plan.has_changes or not yes:
            _out(render_plan(plan, fmt, file_name=str(file)), fmt, services)
            shown = True
        if not plan.has_changes:
            _raise_failed_targets(plan)
            return EXIT_OK
        if not yes:
            if not _is_tty(services.stdin):
                raise Refused("refusing to apply without --yes when not on a terminal")
            if not _confirm("Apply these changes?", services.stdin):
                raise Refused("apply cancelled")
            seen = {}  # the question took a while: apply observes again
        if shown and fmt == "text":
            click.echo()
        return _apply_and_report(services, config, plan, stores, reader, stage, fmt,
                                 parallelism=parallelism, allow_degraded=allow_degraded,
                                 seen=seen, halted=halted)


@contextmanager
def _observed_then(config: Config, targets: Sequence[str], stores: pipeline.Stores, *,
                   timeout: float, ttl: float, parallelism: int,
                   set_aside_failed: bool = False
                   ) -> Iterator[tuple[dict[str, IncusImagesError], Halted]]:
    """Read ``targets`` (nothing is written to a target before that succeeded:
    ``pipeline.observe_first``), then hold their leases for the block; yields the
    targets set aside, with why, and why a target must start no more changes (its
    lease was taken over: ``pipeline.lease_lost``).

    ``set_aside_failed``: a target that cannot be observed or leased is set aside
    (its lease is not asked for); otherwise the first such failure raises.
    """
    unread = pipeline.observe_first(stores, targets, parallelism)
    if unread and not set_aside_failed:
        raise unread[sorted(unread)[0]]
    readable = [t for t in targets if t not in unread]
    with _leases(config, readable, stores, timeout=timeout, ttl=ttl,
                 set_aside_failed=set_aside_failed) as held:
        yield ({**unread, **pipeline.not_leased(config, readable, held)},
               pipeline.lease_lost(config, readable, held))


def _apply_saved(
    services: Services, *, file: Path, plan_file: Path, fmt: PlanFormat, lock_timeout: float,
    lease_ttl: float, operation_timeout: float | None = None,
    parallelism: int = DEFAULT_PARALLELISM, allow_degraded: bool = False,
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
        _out(render_plan(plan, fmt, file_name=str(file)), fmt, services)
        return EXIT_OK
    with opened_stores(config, services, operation_timeout=operation_timeout) as stores, \
            services.reader() as reader, _until_applied() as stage, \
            _observed_then(config, touched(plan), stores, timeout=lock_timeout,
                           ttl=lease_ttl, parallelism=parallelism) as (_, halted):
        seen = pipeline.check_fresh(config, plan, name, stores, parallelism,
                                    on_slow=_still_reading)
        if fmt == "text":
            _out(render_plan(plan, fmt, file_name=str(file)), fmt, services, nl=True)
        return _apply_and_report(services, config, plan, stores, reader, stage, fmt,
                                 parallelism=parallelism, allow_degraded=allow_degraded,
                                 seen=seen, halted=halted)


def _apply_and_report(services: Services, config: Config, plan: Plan,
                      stores: Mapping[str, ImageStore], reader: RemoteReader, stage: _Stage,
                      fmt: PlanFormat, *, parallelism: int = DEFAULT_PARALLELISM,
                      allow_degraded: bool = False,
                      seen: Mapping[str, TargetState] | None = None,
                      halted: Halted | None = None) -> int:
    """Apply ``plan`` on the opened stores, telling ``stage`` when it runs, with progress
    on stderr (timed by ``services.clock``), and report.  ``seen``: the observations
    the plan was made or checked on, under the leases still held (apply starts from
    them instead of reading each store again); ``halted``: why a target must start no
    more changes."""
    interrupts.check()  # a signal whose exception Python dropped: change nothing
    stage.applying()
    started = services.clock()
    with reporting(sys.stderr, environ=services.environ,
                   clock=lambda: services.clock().timestamp()) as reporter:
        result = pipeline.apply_plan(config, plan, stores, reader, reporter=reporter,
                                     parallelism=parallelism, allow_degraded=allow_degraded,
                                     seen=seen, halted=halted)
    stage.applied()
    return _report(result, fmt, services, (services.clock() - started).total_seconds())


def _report(result: ApplyResult, fmt: PlanFormat, services: Services, seconds: float) -> int:
    """Print an apply result (text: a summary, in ``seconds``); every failed change is an
    error line (exit 1)."""
    if fmt == "json":
        click.echo(terminal_safe(json_render.render_result(result)), nl=False)
    else:
        _out(terminal_safe(text_render.render_result(result, seconds=seconds)), fmt, services)
    if not result.ok:
        raise ChangesFailed([
            *(f"{o.change.target}: {change_label(o.change)} failed: "
              f"{o.message or 'no reason given'}" for o in result.failed),
            *(f"{o.change.target}: {change_label(o.change)} skipped: {o.message}"
              for o in result.refused),
            *(f"{why} (not planned, nothing applied)"
              for why in result.failed_targets.values()),
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
    _out(render_plan(plan, fmt, file_name=made_from), fmt, services)
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
            plan = pipeline.make_plan(config, stores, reader, targets=None, allow_empty=False,
                                      now=services.clock(), locks=locks,
                                      on_slow=_still_reading)
        if plan.failed_targets:  # a diff is about every target: a partial one would mislead
            raise TargetsFailed(list(plan.failed_targets.values()))
        return plan

    report = run_diff(file, base=base, head=head, environ=services.environ, plan=plan_head)
    markdown = diff_render.render_markdown(report)
    click.echo(terminal_safe(markdown if fmt == "markdown" else diff_render.render_text(report)),
               nl=False)
    _step_summary(services, lambda: markdown)
    return EXIT_CHANGES if detailed_exitcode and report.plan.has_changes else EXIT_OK


def schema_command(name: str) -> int:
    """Print the JSON Schema ``name`` as the package ships it (byte for byte)."""
    from reconciler.adapters.schemas import packaged

    click.echo(packaged(name), nl=False)
    return EXIT_OK


def status_command(services: Services, *, file: Path, fmt: str, offline: bool,
                   verify: bool = False, parallelism: int = DEFAULT_PARALLELISM) -> int:
    from reconciler.adapters.lockfile import read_locks
    from reconciler.render import status as status_render

    config = _load(file, services)
    with opened_stores(config, services) as stores, services.reader() as reader:
        found = pipeline.gather_status(config, offline=offline, reader=reader,
                                       connect=stores.connect, locks=read_locks(config.path),
                                       verify=verify, parallelism=parallelism,
                                       on_slow=_still_reading)
    for note in found.notes:
        _err(f"{PROG}: note: {note}")
    click.echo(terminal_safe(status_render.RENDERERS[fmt](found.report)), nl=False)
    return EXIT_OK
