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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, cast

import click

from reconciler import __version__
from reconciler.errors import ApplyError, IncusImagesError, Refused, ValidationFailed
from reconciler.model.plan import Plan
from reconciler.model.result import ApplyResult
from reconciler.progress import Reporter, change_label, make_reporter
from reconciler.render import PlanFormat, render_plan
from reconciler.render import json as json_render
from reconciler.render import text as text_render
from reconciler.render.units import plural

if TYPE_CHECKING:
    from reconciler.model.config import Config

PROG = "incus-images"
EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


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
    fail_on_warnings: bool, allow_empty: bool,
) -> int:
    config = _load(file)
    plan = _make_plan(config, _check_targets(config, targets), allow_empty=allow_empty)
    click.echo(render_plan(plan, fmt, file_name=str(file)), nl=False)
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
    fmt: PlanFormat,
) -> int:
    config = _load(file)
    plan = _make_plan(config, _check_targets(config, targets), allow_empty=allow_empty)
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
    renderer = json_render.render_result if fmt == "json" else text_render.render_result
    click.echo(renderer(result), nl=False)
    if not result.ok:
        raise ChangesFailed([
            f"{o.change.target}: {change_label(o.change)} failed: {o.message or 'no reason given'}"
            for o in result.failed
        ])
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
@_debug_option
@click.pass_context
def plan(
    ctx: click.Context, file: Path, targets: tuple[str, ...], fmt: str,
    detailed_exitcode: bool, fail_on_warnings: bool, allow_empty: bool,
) -> None:
    """Show what apply would change, changing nothing.

    Reads the remotes and the image stores, and prints the changes in the order
    apply would make them: + brings an image or alias in, ~ changes one in place,
    - deletes one.  Images this file does not manage are listed as left alone.

    \b
    Exit status: 0 ok, 1 error;
    with --detailed-exitcode: 0 no changes, 2 changes, 1 error;
    with --fail-on-warnings: 1 when the plan has warnings.
    Example (CI drift check):
      incus-images plan --detailed-exitcode --format markdown >> "$GITHUB_STEP_SUMMARY"
    """
    run(ctx, lambda: plan_command(
        file=file, targets=targets, fmt=cast(PlanFormat, fmt),
        detailed_exitcode=detailed_exitcode, fail_on_warnings=fail_on_warnings,
        allow_empty=allow_empty))


@cli.command(context_settings=CONTEXT)
@_file_option
@_targets_option
@click.option("--yes", "-y", is_flag=True, help="Apply without asking for confirmation.")
@_allow_empty_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="How to print the plan and the result on stdout.")
@_debug_option
@click.pass_context
def apply(
    ctx: click.Context, file: Path, targets: tuple[str, ...], yes: bool, allow_empty: bool,
    fmt: str,
) -> None:
    """Plan, then make the image stores match the file.

    Prints the plan and, on a terminal, asks before changing anything.  Without
    a terminal (CI) it refuses unless --yes is given, or there is nothing to
    change.  Progress goes to stderr; the plan and the result to stdout.  Each
    target's changes run in order; after a failure the rest of that target is
    skipped, and running apply again picks up where it stopped.

    \b
    Exit status: 0 applied (or nothing to change), 1 error, refused or a change failed.
    Example (CI deploy):
      incus-images apply --yes
    """
    run(ctx, lambda: apply_command(
        file=file, targets=targets, yes=yes, allow_empty=allow_empty,
        fmt=cast(PlanFormat, fmt)))


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: run the CLI on ``argv`` (default ``sys.argv[1:]``), return the status."""
    status = cli.main(args=argv, prog_name=PROG, standalone_mode=False)
    return int(status)
