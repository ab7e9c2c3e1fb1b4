"""The command line: parse, call the pipeline, render, and map failures to exit codes.

Invariants:

* Exit statuses are decided in ONE place, :func:`exit_status` (called by
  :func:`run`): 0 ok; 2 only from a command that returns it (``plan
  --detailed-exitcode`` with changes); 1 for every :class:`IncusImagesError` and
  every usage error; 3 for any other exception (a bug); 128 + the signal's number
  on SIGINT (130) and SIGTERM (143), with one ``incus-images: interrupted (SIGINT):
  ...`` line saying where the run stopped and whether its leases were released
  (:class:`reconciler.errors.Interrupted`, raised by :mod:`reconciler.interrupts`).
* Plans and results go to stdout; progress, prompts and errors go to stderr.
  Expected errors print one ``incus-images: error: ...`` line each (a validation
  failure prints its ``FILE:LINE:COLUMN: message`` lines) and no traceback unless
  ``--debug``.  A usage error too: ``incus-images: error: No such option '--bogus'.
  (see: incus-images plan --help)``, not click's three-line block.
* Command bodies live in :mod:`reconciler.commands` as plain functions taking the
  run's :class:`~reconciler.services.Services` and returning an exit status; this
  module only parses, and builds the services once per run (the real adapters,
  unless :func:`main` is given others).  A new command is one body there plus one
  decorated wrapper here calling :func:`run`.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, cast

import click

from reconciler import __version__, interrupts, timeouts
from reconciler.commands import (
    DEFAULT_LEASE_TTL,
    DEFAULT_LOCK_TIMEOUT,
    EXIT_ERROR,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    PROG,
    _err,
    apply_command,
    diff_command,
    lock_command,
    plan_command,
    schema_command,
    show_command,
    status_command,
    validate_command,
)
from reconciler.errors import ChangesFailed, IncusImagesError, Interrupted, ValidationFailed
from reconciler.model.schema_names import NAMES as SCHEMA_NAMES
from reconciler.ports import DEFAULT_OPERATION_TIMEOUT, DEFAULT_PARALLELISM
from reconciler.render import PlanFormat, colour
from reconciler.services import Services, system_services

# -- the one error handler ------------------------------------------------------------------

def _interrupted(exc: Interrupted, *, debug: bool) -> int:
    """One line (``incus-images: interrupted (SIGTERM): ...``); 128 + the signal's number."""
    if debug:
        traceback.print_exc()
    _err(f"{PROG}: {exc}")
    return exc.exit_code


def exit_status(fn: Callable[[], int], *, debug: bool) -> int:
    """Call ``fn`` and turn what it returns or raises into an exit status (see module doc)."""
    try:
        return fn()
    except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
        raise  # click's own control flow; handled by _Cli.main
    except BrokenPipeError:  # the reader of stdout went away (`| head`): stop quietly
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until exit
        return EXIT_ERROR
    except Interrupted as exc:
        return _interrupted(exc, debug=debug)
    except KeyboardInterrupt:  # SIGINT while our handler was not installed
        return _interrupted(Interrupted(signal.SIGINT), debug=debug)
    except IncusImagesError as exc:  # ValidationFailed included
        return _failed(exc, debug=debug)
    except Exception as exc:
        return _internal(exc, debug=debug)


def _failed(exc: IncusImagesError, *, debug: bool) -> int:
    """An expected error: its lines (a validation failure's diagnostics); its exit code."""
    if debug:
        traceback.print_exc()
    if isinstance(exc, ValidationFailed):
        for diagnostic in exc.diagnostics:
            _err(str(diagnostic))
        if not exc.diagnostics:
            _err(f"{PROG}: error: the file is invalid")
        return exc.exit_code
    lines = exc.lines if isinstance(exc, ChangesFailed) else str(exc).splitlines()
    for line in lines or [type(exc).__name__]:
        _err(f"{PROG}: error: {line}")
    return exc.exit_code


def _internal(exc: Exception, *, debug: bool) -> int:
    """Any other exception is a bug: one line (a traceback with ``--debug``); exit 3."""
    what = f"{type(exc).__name__}: {exc}".splitlines()[0]
    if debug:
        traceback.print_exc()
        _err(f"{PROG}: internal error: {what}")
    else:
        _err(f"{PROG}: internal error: {what} (run with --debug for a traceback)")
    return EXIT_INTERNAL


def run(ctx: click.Context, body: Callable[[Services], int]) -> NoReturn:
    """Run a command body under :func:`exit_status`, with the run's network timeouts and
    services (the real ones unless :func:`main` was given others)."""
    found = ctx.find_object(Globals) or Globals()
    services = found.services or system_services()
    with timeouts.using(found.timeouts()), colour.disabled(found.no_color):
        status = exit_status(lambda: body(services), debug=_debug(ctx))
    ctx.exit(status)


@dataclass
class Globals:
    """The click context object: the group's options, and the services every command gets
    (None: :func:`reconciler.services.system_services`)."""

    debug: bool = False
    no_color: bool = False
    connect_timeout: float | None = None
    read_timeout: float | None = None
    services: Services | None = None

    def timeouts(self) -> timeouts.Timeouts:
        return timeouts.Timeouts(
            connect=self.connect_timeout or timeouts.DEFAULT_CONNECT,
            read=self.read_timeout or timeouts.DEFAULT_READ)


def _debug(ctx: click.Context) -> bool:
    found = ctx.find_object(Globals)
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
        except click.UsageError as exc:  # one line, like every other error
            _err(_usage_line(exc))
            code = EXIT_ERROR
        except click.ClickException as exc:
            exc.show()
            code = EXIT_ERROR
        except click.exceptions.Abort:
            _err(f"{PROG}: {Interrupted(signal.SIGINT)}")
            code = EXIT_INTERRUPTED
        if standalone_mode:
            sys.exit(code)
        return code


def _usage_line(exc: click.UsageError) -> str:
    """``incus-images: error: <click's message> (see: incus-images plan --help)``."""
    where = exc.ctx.command_path if exc.ctx else PROG
    return f"{PROG}: error: {exc.format_message()} (see: {where} --help)"


# -- the click layer ------------------------------------------------------------------------

def _file_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "-f", "--file", "file", default="images.yaml", show_default=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="The desired-state file.",
    )(fn)


def _global_flag(name: str, attribute: str, help_text: str
                 ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A flag that sets ``attribute`` of the run's :class:`Globals`, accepted on the group
    and on the commands that carry it (either place)."""
    def remember(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        if value:
            setattr(ctx.ensure_object(Globals), attribute, True)
        return value

    return click.option(name, is_flag=True, expose_value=False, is_eager=True,
                        callback=remember, help=help_text)


_debug_option = _global_flag("--debug", "debug", "Print a traceback with every error.")
_colour_option = _global_flag("--no-color", "no_color",
                              "No colour and no live progress bars (as NO_COLOR=1 does).")


def _timeout_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--connect-timeout`` and ``--read-timeout``, on the group and on each command
    that talks to remotes or daemons (given twice, the one after the command wins)."""
    def keep(name: str) -> Callable[[click.Context, click.Parameter, float | None], None]:
        def store(ctx: click.Context, _param: click.Parameter, value: float | None) -> None:
            if value is not None:
                setattr(ctx.ensure_object(Globals), name, value)
        return store

    positive = click.FloatRange(min=0, min_open=True)
    fn = click.option(
        timeouts.READ_OPTION, metavar="SECONDS", type=positive, expose_value=False,
        callback=keep("read_timeout"),
        help="Give up on a remote or daemon that sends nothing for this long "
        f"(per read; an index file must also arrive within {timeouts.INDEX_DEADLINE:g} s "
        f"in all; a daemon's image list, sent only once whole, waits {timeouts.LIST_READS} "
        "times this). "
        f"Default: {timeouts.DEFAULT_READ:g}.",
    )(fn)
    return click.option(
        timeouts.CONNECT_OPTION, metavar="SECONDS", type=positive, expose_value=False,
        callback=keep("connect_timeout"),
        help="Give up connecting to a remote or daemon (TCP, unix socket, TLS handshake) "
        f"after this long. Default: {timeouts.DEFAULT_CONNECT:g}.",
    )(fn)


def _targets_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--target", "targets", multiple=True, metavar="NAME",
        help="Only this target (repeatable). Default: every target of the file.",
    )(fn)


def _verify_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--verify", is_flag=True,
        help="Also check that every image this file manages can be read through every "
        "cluster member (one export request per image and member); broken copies are "
        "reported, and repaired by apply when every member is healthy.")(fn)
def _parallelism_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--parallelism", "parallelism", metavar="N", type=click.IntRange(min=1),
        default=DEFAULT_PARALLELISM, show_default=True,
        help="How many targets to work on at once. A target that cannot be reached fails "
        "alone: the others go ahead, and the run exits 1 naming it.",
    )(fn)


def _allow_empty_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--allow-empty", is_flag=True,
        help="Allow a file with no images to delete every image this owner manages.",
    )(fn)


CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


ENVIRONMENT = """\b
Environment:
  INCUS_SOCKET         the local daemon's socket, for a target with no url
                       (default: $INCUS_DIR/unix.socket)
  INCUS_DIR            the local daemon's directory when INCUS_SOCKET is unset
                       (default: /var/lib/incus)
  SSL_CERT_FILE        the CAs trusted for https:// without a pinned certificate,
  SSL_CERT_DIR         as for incusd (default: the system's; REQUESTS_CA_BUNDLE
                       and certifi are not read)
  GITHUB_STEP_SUMMARY  when set, plan and diff also append their markdown to it
  NO_COLOR             when set (any value), no colour and no live progress
                       bars, like --no-color; TERM=dumb does the same
  CI                   not read: apply asks only when stdin is a terminal (else
                       it needs --yes); progress draws bars only when stderr
                       is a terminal, else it prints plain lines with the time
                       elapsed (and a "still ..." line at least every 30 s)
  ${VAR}               any variable the file references as ${VAR}

\b
Shell completion (bash; zsh_source and fish_source for the others):
  eval "$(_INCUS_IMAGES_COMPLETE=bash_source incus-images)"
"""


@click.group(cls=_Cli, context_settings=CONTEXT, epilog=ENVIRONMENT)
@click.version_option(__version__, "-V", "--version", prog_name=PROG,
                      message="%(prog)s %(version)s")
@_debug_option
@_colour_option
@_timeout_options
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Keep Incus image stores in the state images.yaml declares: plan, then apply.

    \b
    Typical use:
      incus-images validate            # check the file, no network
      incus-images plan                # show what apply would change
      incus-images apply               # plan, confirm, apply

    Every request to a remote or a daemon is bounded: --connect-timeout (10 s)
    to connect, --read-timeout (30 s) for each wait for data.  Both are also
    accepted after the command (plan --read-timeout 60).  A stalled server or
    a stopped daemon fails with "timed out after N s ... (--read-timeout)".

    \b
    Exit status:
      0    success (or, with plan --detailed-exitcode, no changes)
      1    an expected failure: invalid file, unreachable store, conflict,
           refused or failed apply, bad usage
      2    plan --detailed-exitcode found changes
      3    internal error (a bug: please report it, with --debug output)
      130  interrupted (SIGINT); 143 stopped (SIGTERM): before the next change,
           with the leases released
    """
    ctx.ensure_object(Globals)


@cli.command(context_settings=CONTEXT)
@_file_option
@_debug_option
@click.pass_context
def validate(ctx: click.Context, file: Path) -> None:
    """Check the desired-state file without touching the network.

    Checks the schema, that every remote and target an image uses is declared,
    aliases, fingerprint pins and ${VAR} references.  Every problem is reported
    at once, one line each, as FILE:LINE:COLUMN: message.

    It needs no secrets: an unset ${VAR} used only for credentials (a target's
    client_cert, client_key, server_cert; a remote's certificate) is a note on
    stderr, not an error.  plan and apply still fail on it.

    \b
    Exit status: 0 valid, 1 invalid.
    Example:
      incus-images validate -f images.yaml
    """
    run(ctx, lambda services: validate_command(services, file=file))


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
@_verify_option
@_parallelism_option
@_timeout_options
@_debug_option
@_colour_option
@click.pass_context
def plan(
    ctx: click.Context, file: Path, targets: tuple[str, ...], fmt: str,
    detailed_exitcode: bool, fail_on_warnings: bool, allow_empty: bool, out: Path | None,
    verify: bool,
    parallelism: int,
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
    run(ctx, lambda services: plan_command(
        services, file=file, targets=targets, fmt=cast(PlanFormat, fmt),
        detailed_exitcode=detailed_exitcode, fail_on_warnings=fail_on_warnings,
        allow_empty=allow_empty, out=out, verify=verify, parallelism=parallelism))


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
@click.option("--operation-timeout", "operation_timeout", metavar="SECONDS",
              show_default=True, type=click.FloatRange(min=0, min_open=True),
              default=DEFAULT_OPERATION_TIMEOUT,
              help="How long to wait for one daemon operation (an image download) before "
              "cancelling it.")
@click.option("--allow-degraded-cluster", "allow_degraded", is_flag=True,
              help="On a cluster with a member down, download and delete images all the "
              "same (they land on the healthy members only; deletes may leave broken copies).")
@click.option("--lease-ttl", "lease_ttl", metavar="SECONDS", hidden=True,
              type=click.FloatRange(min=1), default=DEFAULT_LEASE_TTL,
              help="How long a lease lasts unless renewed (a crashed apply's lapses after it).")
@click.argument("plan_file", metavar="[PLAN]", required=False,
                type=click.Path(dir_okay=False, path_type=Path))
@_verify_option
@_parallelism_option
@_timeout_options
@_debug_option
@_colour_option
@click.pass_context
def apply(
    ctx: click.Context, file: Path, targets: tuple[str, ...], yes: bool, allow_empty: bool,
    fmt: str, lock_timeout: float, operation_timeout: float, lease_ttl: float,
    plan_file: Path | None, verify: bool, parallelism: int, allow_degraded: bool,
) -> None:
    """Plan, then make the image stores match the file.

    Prints the plan and, on a terminal, asks before changing anything.  Without
    a terminal (CI) it refuses unless --yes is given, or there is nothing to
    change.  Progress goes to stderr (on a terminal, a bar per download; else
    lines with the time elapsed); the plan and a summary of the result to
    stdout.  Each target's changes run in order; after a failure the rest of
    that target is skipped, and running apply again picks up where it stopped.

    With PLAN (from plan --out) it applies exactly that plan, without asking:
    it observes the targets again and refuses, changing nothing, when anything
    the plan recorded has changed (stale).  Connection details and credentials
    come from the file and the environment, never from the plan.

    Only one apply at a time works on a daemon: each holds a lease on it (in
    the server config key user.incus-images.lease), waits up to --lock-timeout
    for another's, and releases it at the end; a crashed apply's lease lapses.
    Nothing is written to a target before it was observed; a cluster without
    quorum is an error.  While a member of a cluster is unhealthy, its image
    downloads, adoptions and deletes are skipped (exit 1) unless
    --allow-degraded-cluster is given; the other changes are applied.

    Each daemon operation (an image download) is waited for until it ends, up
    to --operation-timeout; then the tool cancels it and the change fails.

    Up to --parallelism targets are planned and applied at once; a target that
    cannot be reached fails alone (its changes are not planned), the others are
    applied, and the result names it.

    \b
    Exit status: 0 applied (or nothing to change), 1 error, refused, stale,
    locked or a change failed.
    Example (CI deploy):
      incus-images apply --yes
    Example (a reviewed plan):
      incus-images apply -f images.yaml plan.json
    """
    run(ctx, lambda services: apply_command(
        services, file=file, targets=targets, yes=yes, allow_empty=allow_empty,
        fmt=cast(PlanFormat, fmt), plan_file=plan_file, lock_timeout=lock_timeout,
        lease_ttl=lease_ttl, operation_timeout=operation_timeout, verify=verify,
        parallelism=parallelism, allow_degraded=allow_degraded))


@cli.command(context_settings=CONTEXT)
@click.argument("plan_file", metavar="PLAN", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]),
              default="text", show_default=True,
              help="text for people, json for scripts, markdown for pull requests.")
@_debug_option
@_colour_option
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
    run(ctx, lambda services: show_command(
        services, plan_file=plan_file, fmt=cast(PlanFormat, fmt)))


@cli.command(context_settings=CONTEXT)
@_file_option
@click.option("--upgrade", is_flag=True,
              help="Move entries to the remote's newest builds: every entry, or only the "
              "SOURCEs named.")
@click.argument("sources", nargs=-1, metavar="[SOURCE]...")
@_timeout_options
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
    run(ctx, lambda services: lock_command(
        services, file=file, upgrade=upgrade, sources=sources))


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
@_timeout_options
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
    run(ctx, lambda services: diff_command(
        services, file=file, base=base, head=head, fmt=fmt,
        detailed_exitcode=detailed_exitcode))


@cli.command(context_settings=CONTEXT)
@_file_option
@click.option("--format", "fmt", type=click.Choice(["text", "json", "yaml", "csv"]),
              default="text", show_default=True,
              help="text for people; json or yaml (the same document) for scripts; csv: a "
              "header row, then one row per image (target, project, then the JSON keys).")
@click.option("--offline", is_flag=True,
              help="Do not read the remotes: update_available is unknown (null).")
@_verify_option
@_parallelism_option
@_timeout_options
@_debug_option
@click.pass_context
def status(ctx: click.Context, file: Path, fmt: str, offline: bool, verify: bool,
           parallelism: int) -> None:
    """Show the image stores as they are.

    Every image of every target: who manages it, aliases, expiry, last use,
    size, and whether an update waits upstream (or the plan wants another
    build).  Nothing is changed.

    \b
    CSV columns, in order (values as in the JSON; null is empty; several
    aliases are one quoted field, one per line, as incus image list does):
      target, project, fingerprint, managed, owner, cached, aliases, source,
      auto_update, expires_at, last_used_at, size, update_available

    \b
    Exit status: 0 ok, 1 error.
    Examples:
      incus-images status --format json | jq '.targets[].images[] | select(.update_available)'
      incus-images status --format csv > images.csv
    """
    run(ctx, lambda services: status_command(
        services, file=file, fmt=fmt, offline=offline, verify=verify,
        parallelism=parallelism))


@cli.command(context_settings=CONTEXT)
@click.argument("name", type=click.Choice(SCHEMA_NAMES), metavar="NAME")
@_debug_option
@click.pass_context
def schema(ctx: click.Context, name: str) -> None:
    """Print a JSON Schema, for editors and CI.

    NAME is desired-state, plan, lock or status.  The same files as
    schemas/*.schema.json in the project, shipped in the package: point an
    editor at them (a yaml-language-server modeline, as the examples and the
    lock file carry) or validate documents in CI.  Each has a
    stable $id, urn:incus-images:schema:NAME:1.

    \b
    Exit status: 0 printed, 1 unknown NAME.
    Example:
      mkdir -p schemas && incus-images schema desired-state > schemas/desired-state.schema.json
    """
    run(ctx, lambda _services: schema_command(name))


def main(argv: Sequence[str] | None = None, *, services: Services | None = None) -> int:
    """The CLI on ``argv`` (default ``sys.argv[1:]``): return the exit status.

    ``services``: what the commands reach the world with (default: the real
    adapters, :func:`reconciler.services.system_services`); tests pass fakes.

    SIGINT and SIGTERM are handled while it runs (:func:`reconciler.interrupts.handled`);
    one that lands outside a command body (while click parses) ends here the same way.
    """
    with interrupts.handled():
        try:
            status = cli.main(args=argv, prog_name=PROG, standalone_mode=False,
                              obj=Globals(services=services))
        except Interrupted as exc:
            return _interrupted(exc, debug=False)
        return int(status)
