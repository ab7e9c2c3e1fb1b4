"""The command line: parse, call the pipeline, render, and map failures to exit codes.

Invariants:

* Exit statuses are decided in ONE place, :func:`exit_status` (called by
  :func:`run`): 0 ok; 2 only from a command that returns it (``plan
  --detailed-exitcode`` with changes); 1 for every :class:`IncusImagesError` and
  every usage error; 3 for any other exception (a bug); 130 on interrupt.
* Plans and results go to stdout; progress, prompts and errors go to stderr.
  Expected errors print one ``incus-images: error: ...`` line each (a validation
  failure prints its ``FILE:LINE:COLUMN: message`` lines) and no traceback unless
  ``--debug``.
* Command bodies are plain functions taking keyword arguments and returning an
  exit status; the click layer only parses.  A new command (``show``, ``lock``,
  ``diff``, ``status``) is one body plus one decorated wrapper calling :func:`run`.

``reconciler.load`` and ``reconciler.pipeline`` are imported inside the functions
that use them so that ``--help``, ``--version`` and tests that replace them do not
import the network stack.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, cast

import click

from reconciler import __version__, planfile
from reconciler.errors import ApplyError, IncusImagesError, Refused, ValidationFailed
from reconciler.model.plan import Plan
from reconciler.model.result import ApplyResult
from reconciler.progress import Reporter, change_label, make_reporter
from reconciler.render import PlanFormat, render_plan
from reconciler.render import json as json_render
from reconciler.render import text as text_render
from reconciler.render.units import plural

if TYPE_CHECKING:
    from reconciler.lease import LeaseRecord
    from reconciler.model.config import Config
    from reconciler.model.lock import Locks

PROG = "incus-images"
EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
DEFAULT_LOCK_TIMEOUT = 300.0
DEFAULT_LEASE_TTL = 60.0


class ChangesFailed(ApplyError):
    """``apply`` ran, and some changes failed: one error line per failed change."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__(f"{plural(len(lines), 'change')} failed")


# -- the one error handler ------------------------------------------------------------------

def _err(line: str) -> None:
    click.echo(line, err=True)


def exit_status(fn: Callable[[], int], *, debug: bool) -> int:
    """Call ``fn`` and turn what it returns or raises into an exit status (see module doc)."""
    try:
        return fn()
    except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
        raise  # click's own control flow; handled by _Cli.main
    except BrokenPipeError:  # the reader of stdout went away (`| head`): stop quietly
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until exit
        return EXIT_ERROR
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        _err(f"{PROG}: interrupted")
        return EXIT_INTERRUPTED
    except ValidationFailed as exc:
        if debug:
            traceback.print_exc()
        for diagnostic in exc.diagnostics:
            _err(str(diagnostic))
        if not exc.diagnostics:
            _err(f"{PROG}: error: the file is invalid")
        return exc.exit_code
    except IncusImagesError as exc:
        if debug:
            traceback.print_exc()
        lines = exc.lines if isinstance(exc, ChangesFailed) else str(exc).splitlines()
        for line in lines or [type(exc).__name__]:
            _err(f"{PROG}: error: {line}")
        return exc.exit_code
    except Exception as exc:
        what = f"{type(exc).__name__}: {exc}".splitlines()[0]
        if debug:
            traceback.print_exc()
            _err(f"{PROG}: internal error: {what}")
        else:
            _err(f"{PROG}: internal error: {what} (run with --debug for a traceback)")
        return EXIT_INTERNAL


def run(ctx: click.Context, fn: Callable[[], int]) -> NoReturn:
    """Run a command body under :func:`exit_status` and exit with the status."""
    ctx.exit(exit_status(fn, debug=_debug(ctx)))


@dataclass
class _Globals:
    debug: bool = False


def _debug(ctx: click.Context) -> bool:
    found = ctx.find_object(_Globals)
    return bool(found and found.debug)


class _Cli(click.Group):
    """A group whose ``main`` returns (or exits with) the contract's exit statuses.

    Usage errors exit 1, not click's 2: with ``--detailed-exitcode`` a 2 means
    "the plan has changes", and a mistyped flag must never look like that.
    """

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            rv = super().main(args=args, prog_name=prog_name or PROG, complete_var=complete_var,
                              standalone_mode=False, windows_expand_args=windows_expand_args,
                              **extra)
            code = rv if isinstance(rv, int) else EXIT_OK
        except click.exceptions.NoArgsIsHelpError as exc:  # bare `incus-images`: help, on stdout
            click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
            code = EXIT_OK
        except click.ClickException as exc:
            exc.show()
            code = EXIT_ERROR
        except click.exceptions.Abort:
            _err(f"{PROG}: interrupted")
            code = EXIT_INTERRUPTED
        if standalone_mode:
            sys.exit(code)
        return code


# -- the pipeline, imported lazily ----------------------------------------------------------

def _environ() -> Mapping[str, str]:
    return os.environ


def _load(path: Path) -> Config:
    from reconciler.load import load_config

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


def _apply_plan(config: Config, plan: Plan, *, reporter: Reporter) -> ApplyResult:
    from reconciler.pipeline import apply_plan

    result: ApplyResult = apply_plan(config, plan, environ=_environ(), reporter=reporter)
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


def _check_fresh(config: Config, plan: Plan, name: str) -> None:
    from reconciler.pipeline import check_fresh

    check_fresh(config, plan, name)


def _check_targets(config: Config, targets: Sequence[str]) -> list[str]:
    """``targets`` without repeats; every name must be declared in the file."""
    wanted = list(dict.fromkeys(targets))
    unknown = [t for t in wanted if t not in config.targets]
    if unknown:
        names = ", ".join(repr(t) for t in unknown)
        declared = ", ".join(config.targets) or "none"
        raise IncusImagesError(
            f"unknown target{'s' if len(unknown) > 1 else ''} {names} "
            f"(the file declares: {declared})")
    return wanted


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
    plan = _make_plan(config, _check_targets(config, targets), allow_empty=allow_empty)
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
) -> int:
    """Plan and apply under the targets' leases, or apply a saved plan (``plan_file``)."""
    if plan_file is not None:
        if targets:
            raise IncusImagesError("--target cannot be used with a saved plan: the plan "
                                   "already says which targets it changes")
        return _apply_saved(file=file, plan_file=plan_file, fmt=fmt,
                            lock_timeout=lock_timeout, lease_ttl=lease_ttl)
    config = _load(file)
    names = _check_targets(config, targets)
    with _leases(config, names or sorted(config.targets), timeout=lock_timeout, ttl=lease_ttl):
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
        result = _apply_plan(config, plan, reporter=make_reporter(sys.stderr))
        return _report(result, fmt)


def _apply_saved(
    *, file: Path, plan_file: Path, fmt: PlanFormat, lock_timeout: float, lease_ttl: float,
) -> int:
    """Apply exactly a saved plan: no re-planning, no question (it was reviewed).

    Connection details and credentials come from ``file`` and the environment.
    Under the leases, every target it changes is observed again first; if
    anything it recorded moved, it refuses (stale) and changes nothing.
    """
    plan = planfile.load(plan_file)
    config = _load(file)
    name = str(plan_file)
    planfile.check_matches(plan, config, name)
    if not plan.has_changes:
        click.echo(render_plan(plan, fmt, file_name=str(file)), nl=False)
        return EXIT_OK
    with _leases(config, planfile.touched(plan), timeout=lock_timeout, ttl=lease_ttl):
        _check_fresh(config, plan, name)
        if fmt == "text":
            click.echo(render_plan(plan, fmt, file_name=str(file)))
        result = _apply_plan(config, plan, reporter=make_reporter(sys.stderr))
        return _report(result, fmt)


def _report(result: ApplyResult, fmt: PlanFormat) -> int:
    """Print an apply result; every failed change is an error line (exit 1)."""
    renderer = json_render.render_result if fmt == "json" else text_render.render_result
    click.echo(renderer(result), nl=False)
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
    click.echo(planfile.describe(plan) + "\n")
    click.echo(render_plan(plan, fmt, file_name=made_from), nl=False)
    return EXIT_OK


def _step_summary(markdown: Callable[[], str]) -> None:
    """Append ``markdown()`` to ``$GITHUB_STEP_SUMMARY`` when it is set (a failure is a note)."""
    from reconciler import stepsummary

    env = _environ()
    if env.get(stepsummary.VARIABLE):
        problem = stepsummary.append(markdown(), env)
        if problem:
            _err(f"{PROG}: note: {problem}")


def lock_command(*, file: Path, upgrade: bool, sources: Sequence[str]) -> int:
    from reconciler import lockfile
    from reconciler.pipeline import default_connect, default_reader

    config = _load(file)
    outcome = lockfile.run_lock(config, upgrade=upgrade, sources=sources,
                                reader=default_reader(), connect=default_connect)
    click.echo(lockfile.render_outcome(outcome), nl=False)
    return EXIT_OK


def diff_command(*, file: Path, base: str, head: str | None, fmt: str,
                 detailed_exitcode: bool) -> int:
    from reconciler.gitdiff import run_diff
    from reconciler.pipeline import make_plan
    from reconciler.render import diff as diff_render

    def plan_head(config: Config, locks: Locks | None) -> Plan:
        plan: Plan = make_plan(config, targets=None, allow_empty=False, environ=_environ(),
                               now=datetime.now(UTC), locks=locks)
        return plan

    report = run_diff(file, base=base, head=head, environ=_environ(), plan=plan_head)
    markdown = diff_render.render_markdown(report)
    click.echo(markdown if fmt == "markdown" else diff_render.render_text(report), nl=False)
    _step_summary(lambda: markdown)
    return EXIT_CHANGES if detailed_exitcode and report.plan.has_changes else EXIT_OK


def status_command(*, file: Path, fmt: str, offline: bool) -> int:
    from reconciler.lockfile import read_locks
    from reconciler.pipeline import default_connect, default_reader
    from reconciler.render import status as status_render
    from reconciler.status import gather

    config = _load(file)
    found = gather(config, offline=offline, reader=default_reader(), connect=default_connect,
                   locks=read_locks(config.path))
    for note in found.notes:
        _err(f"{PROG}: note: {note}")
    renderer = status_render.render_json if fmt == "json" else status_render.render_text
    click.echo(renderer(found.report), nl=False)
    return EXIT_OK


# -- the click layer ------------------------------------------------------------------------

def _file_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "-f", "--file", "file", default="images.yaml", show_default=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="The desired-state file.",
    )(fn)


def _debug_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    def enable(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        if value:
            ctx.ensure_object(_Globals).debug = True
        return value

    return click.option(
        "--debug", is_flag=True, expose_value=False, is_eager=True, callback=enable,
        help="Print a traceback with every error.",
    )(fn)


def _targets_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--target", "targets", multiple=True, metavar="NAME",
        help="Only this target (repeatable). Default: every target of the file.",
    )(fn)


def _allow_empty_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--allow-empty", is_flag=True,
        help="Allow a file with no images to delete every image this owner manages.",
    )(fn)


CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=_Cli, context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name=PROG, message="%(prog)s %(version)s")
@_debug_option
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Keep Incus image stores in the state images.yaml declares: plan, then apply.

    \b
    Typical use:
      incus-images validate            # check the file, no network
      incus-images plan                # show what apply would change
      incus-images apply               # plan, confirm, apply

    \b
    Exit status:
      0    success (or, with plan --detailed-exitcode, no changes)
      1    an expected failure: invalid file, unreachable store, conflict,
           refused or failed apply, bad usage
      2    plan --detailed-exitcode found changes
      3    internal error (a bug: please report it, with --debug output)
      130  interrupted
    """
    ctx.ensure_object(_Globals)


@cli.command(context_settings=CONTEXT)
@_file_option
@_debug_option
@click.pass_context
def validate(ctx: click.Context, file: Path) -> None:
    """Check the desired-state file without touching the network.

    Checks the schema, that every remote and target an image uses is declared,
    aliases, fingerprint pins and ${VAR} references.  Every problem is reported
    at once, one line each, as FILE:LINE:COLUMN: message.

    \b
    Exit status: 0 valid, 1 invalid.
    Example:
      incus-images validate -f images.yaml
    """
    run(ctx, lambda: validate_command(file=file))


@cli.command(context_settings=CONTEXT)
@_file_option
@_targets_option
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]),
              default="text", show_default=True,
              help="text for people, json for scripts, markdown for pull requests.")
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 2 when the plan has changes, 0 when it has none.")
@click.option("--fail-on-warnings", is_flag=True,
              help="Exit 1 when the plan has warnings, whatever --detailed-exitcode says.")
@_allow_empty_option
@click.option("--out", "out", metavar="PLAN", default=None,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Also save the plan to this file, for apply PLAN (and show PLAN).")
@_debug_option
@click.pass_context
def plan(
    ctx: click.Context, file: Path, targets: tuple[str, ...], fmt: str,
    detailed_exitcode: bool, fail_on_warnings: bool, allow_empty: bool, out: Path | None,
) -> None:
    """Show what apply would change, changing nothing.

    Reads the remotes and the image stores, and prints the changes in the order
    apply would make them: + brings an image or alias in, ~ changes one in place,
    - deletes one.  Images this file does not manage are listed as left alone.
    With --out PLAN the plan is also saved, with what it observed, so that
    `apply PLAN` later applies exactly it, or refuses if the stores moved.

    \b
    Exit status: 0 ok, 1 error;
    with --detailed-exitcode: 0 no changes, 2 changes, 1 error;
    with --fail-on-warnings: 1 when the plan has warnings.
    Example (CI drift check):
      incus-images plan --detailed-exitcode --format markdown >> "$GITHUB_STEP_SUMMARY"
    Example (review, then apply exactly what was reviewed):
      incus-images plan --out plan.json && incus-images apply plan.json
    """
    run(ctx, lambda: plan_command(
        file=file, targets=targets, fmt=cast(PlanFormat, fmt),
        detailed_exitcode=detailed_exitcode, fail_on_warnings=fail_on_warnings,
        allow_empty=allow_empty, out=out))


@cli.command(context_settings=CONTEXT)
@_file_option
@_targets_option
@click.option("--yes", "-y", is_flag=True, help="Apply without asking for confirmation.")
@_allow_empty_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="How to print the plan and the result on stdout.")
@click.option("--lock-timeout", "lock_timeout", metavar="SECONDS", show_default=True,
              type=click.FloatRange(min=0), default=DEFAULT_LOCK_TIMEOUT,
              help="How long to wait for another apply's lease on a target.")
@click.option("--lease-ttl", "lease_ttl", metavar="SECONDS", hidden=True,
              type=click.FloatRange(min=1), default=DEFAULT_LEASE_TTL,
              help="How long a lease lasts unless renewed (a crashed apply's lapses after it).")
@click.argument("plan_file", metavar="[PLAN]", required=False,
                type=click.Path(dir_okay=False, path_type=Path))
@_debug_option
@click.pass_context
def apply(
    ctx: click.Context, file: Path, targets: tuple[str, ...], yes: bool, allow_empty: bool,
    fmt: str, lock_timeout: float, lease_ttl: float, plan_file: Path | None,
) -> None:
    """Plan, then make the image stores match the file.

    Prints the plan and, on a terminal, asks before changing anything.  Without
    a terminal (CI) it refuses unless --yes is given, or there is nothing to
    change.  Progress goes to stderr; the plan and the result to stdout.  Each
    target's changes run in order; after a failure the rest of that target is
    skipped, and running apply again picks up where it stopped.

    With PLAN (from plan --out) it applies exactly that plan, without asking:
    it observes the targets again and refuses, changing nothing, when anything
    the plan recorded has changed (stale).  Connection details and credentials
    come from the file and the environment, never from the plan.

    Only one apply at a time works on a daemon: each holds a lease on it (in
    the server config key user.incus-images.lease), waits up to --lock-timeout
    for another's, and releases it at the end; a crashed apply's lease lapses.

    \b
    Exit status: 0 applied (or nothing to change), 1 error, refused, stale,
    locked or a change failed.
    Example (CI deploy):
      incus-images apply --yes
    Example (a reviewed plan):
      incus-images apply -f images.yaml plan.json
    """
    run(ctx, lambda: apply_command(
        file=file, targets=targets, yes=yes, allow_empty=allow_empty,
        fmt=cast(PlanFormat, fmt), plan_file=plan_file, lock_timeout=lock_timeout,
        lease_ttl=lease_ttl))


@cli.command(context_settings=CONTEXT)
@click.argument("plan_file", metavar="PLAN", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]),
              default="text", show_default=True,
              help="text for people, json for scripts, markdown for pull requests.")
@_debug_option
@click.pass_context
def show(ctx: click.Context, plan_file: Path, fmt: str) -> None:
    """Render a saved plan (from plan --out), contacting nothing.

    The file is checked as apply would check it: a truncated, edited or foreign
    file is an error.

    \b
    Exit status: 0 shown, 1 not a valid saved plan.
    Example:
      incus-images show plan.json --format markdown >> "$GITHUB_STEP_SUMMARY"
    """
    run(ctx, lambda: show_command(plan_file=plan_file, fmt=cast(PlanFormat, fmt)))


@cli.command(context_settings=CONTEXT)
@_file_option
@click.option("--upgrade", is_flag=True,
              help="Move entries to the remote's newest builds: every entry, or only the "
              "SOURCEs named.")
@click.argument("sources", nargs=-1, metavar="[SOURCE]...")
@_debug_option
@click.pass_context
def lock(ctx: click.Context, file: Path, upgrade: bool, sources: tuple[str, ...]) -> None:
    """Write the lock file: the build every tracked entry resolves to.

    The lock file sits beside the file (images.yaml -> images.lock.yaml); commit
    it.  plan and apply then use the locked builds instead of the remotes'
    newest.  Without --upgrade, locked entries keep their build and missing ones
    are added; the file is rewritten only when its content changes.  Targets are
    contacted only for entries without an architecture (to learn the host's).

    \b
    Exit status: 0 ok, 1 error.
    Examples:
      incus-images lock                          # lock what is not locked yet
      incus-images lock --upgrade                # move every entry to the newest build
      incus-images lock --upgrade images:debian/12
    """
    run(ctx, lambda: lock_command(file=file, upgrade=upgrade, sources=sources))


@cli.command(context_settings=CONTEXT)
@_file_option
@click.option("--base", required=True, metavar="REV",
              help="The git revision to compare with (e.g. origin/main).")
@click.option("--head", default=None, metavar="REV",
              help="The revision to review. Default: the working tree.")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown"]), default="text",
              show_default=True, help="text for logs, markdown for a pull-request comment.")
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 2 when the head's plan has changes, 0 when it has none.")
@_debug_option
@click.pass_context
def diff(ctx: click.Context, file: Path, base: str, head: str | None, fmt: str,
         detailed_exitcode: bool) -> None:
    """Show what a change to the file means: for pull requests.

    Reads the file and its lock file at --base and --head from git (no
    checkout), lists the entries added, removed and changed and the lock file's
    changes, then plans the head against the live stores.  The markdown form is
    one PR comment, cut below GitHub's size limit.  With GITHUB_STEP_SUMMARY set,
    the markdown is also appended there.

    \b
    Exit status: 0 ok, 1 error; with --detailed-exitcode 2 when the plan has changes.
    Example (on pull_request):
      incus-images diff --base origin/main --format markdown > comment.md
    """
    run(ctx, lambda: diff_command(file=file, base=base, head=head, fmt=fmt,
                                  detailed_exitcode=detailed_exitcode))


@cli.command(context_settings=CONTEXT)
@_file_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="text for people, json for scripts.")
@click.option("--offline", is_flag=True,
              help="Do not read the remotes: update_available is unknown (null).")
@_debug_option
@click.pass_context
def status(ctx: click.Context, file: Path, fmt: str, offline: bool) -> None:
    """Show the image stores as they are.

    Every image of every target: who manages it, aliases, expiry, last use,
    size, and whether an update waits upstream (or the plan wants another
    build).  Nothing is changed.

    \b
    Exit status: 0 ok, 1 error.
    Example:
      incus-images status --format json | jq '.targets[].images[] | select(.update_available)'
    """
    run(ctx, lambda: status_command(file=file, fmt=fmt, offline=offline))


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: run the CLI on ``argv`` (default ``sys.argv[1:]``), return the status."""
    status = cli.main(args=argv, prog_name=PROG, standalone_mode=False)
    return int(status)
