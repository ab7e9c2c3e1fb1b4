"""The CI recipes in examples/ci run only real ``incus-images`` commands with real flags.

Every ``incus-images`` command line in a GitHub ``run:`` or a GitLab
``script``/``before_script`` item is tokenised as a shell would (GitHub
``${{ }}`` expressions and ``$VARS`` are opaque values) and parsed by the click
command it names: an unknown command, flag or a missing value fails here, not in
a user's pipeline.  Nothing is run.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from ruamel.yaml import YAML

from reconciler.cli import cli

CI = Path(__file__).resolve().parents[2] / "examples" / "ci"
GITHUB = CI / "github-actions.yml"
GITLAB = CI / "gitlab-ci.yml"
_EXPR = re.compile(r"\$\{\{.*?\}\}")
_OPERATORS = {"|", "||", "&&", ";", "&", "(", ")"}
_REDIRECTS = {">", ">>", "<", ">&", "<&", "&>"}


def load(path: Path) -> Any:
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


def github_scripts(doc: Any) -> Iterator[tuple[str, str]]:
    for job_name, job in doc["jobs"].items():
        for step in job.get("steps", []):
            if "run" in step:
                yield f"{job_name}: {step.get('name', step['run'])}", step["run"]


def gitlab_scripts(doc: Any) -> Iterator[tuple[str, str]]:
    for job_name, job in doc.items():
        if not isinstance(job, dict):
            continue
        for key in ("before_script", "script", "after_script"):
            for line in job.get(key, []) or []:
                yield f"{job_name}.{key}", line


def command_lines(script: str) -> Iterator[list[str]]:
    """Every ``incus-images`` invocation in a shell script, as its argument list."""
    text = _EXPR.sub("GITHUB_EXPRESSION", script.replace("\\\n", " "))
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        tokens = list(lexer)
        current: list[str] = []
        skip = False
        for token in [*tokens, ";"]:
            if skip:
                skip = False
                continue
            if token in _REDIRECTS:
                skip = True
                continue
            if token in _OPERATORS:
                if current and current[0] == "incus-images":
                    yield current[1:]
                current = []
                continue
            current.append(token)


def recipe_commands() -> list[tuple[str, str, list[str]]]:
    found = []
    for where, script in github_scripts(load(GITHUB)):
        found += [(f"{GITHUB.name}: {where}", script, args) for args in command_lines(script)]
    for where, script in gitlab_scripts(load(GITLAB)):
        found += [(f"{GITLAB.name}: {where}", script, args) for args in command_lines(script)]
    return found


def parse(args: list[str]) -> click.Context:
    """Parse ``incus-images ARGS`` with the real click commands (no command runs)."""
    assert args, "a bare incus-images"
    name, rest = args[0], args[1:]
    command = cli.commands.get(name)
    assert command is not None, f"incus-images has no command {name!r}"
    parent = click.Context(cli, info_name="incus-images")
    return command.make_context(name, list(rest), parent=parent)


COMMANDS = recipe_commands()


def test_the_recipes_exist_and_are_yaml() -> None:
    assert load(GITHUB)["jobs"] and load(GITLAB)["apply"]


@pytest.mark.parametrize(("where", "script", "args"), COMMANDS,
                         ids=[f"{w} :: {' '.join(a)}" for w, _, a in COMMANDS])
def test_every_command_line_is_a_real_command_with_real_flags(
        where: str, script: str, args: list[str]) -> None:
    ctx = parse(args)
    assert ctx.command.name == args[0], where


def test_the_flow_is_review_then_plan_then_apply_of_the_saved_plan() -> None:
    gh = [(w.split(":")[1].strip(), a) for w, _, a in COMMANDS if w.startswith(GITHUB.name)]
    gl = [(w.split(":")[1].strip(), a) for w, _, a in COMMANDS if w.startswith(GITLAB.name)]
    for commands in (gh, gl):
        diffs = [parse(a).params for _, a in commands if a[0] == "diff"]
        assert diffs and diffs[0]["base"].startswith("origin/")
        assert diffs[0]["fmt"] == "markdown"
        plans = [parse(a).params for _, a in commands if a[0] == "plan"]
        assert [str(p["out"]) for p in plans] == ["plan.json"]
        applies = [parse(a).params for _, a in commands if a[0] == "apply"]
        assert [str(p["plan_file"]) for p in applies] == ["plan.json"]
    assert ("review", ["diff", "--base", "origin/GITHUB_EXPRESSION", "--format",
                       "markdown"]) in gh


def test_github_posts_one_sticky_comment_and_uploads_the_plan() -> None:
    jobs = load(GITHUB)["jobs"]
    review_steps = jobs["review"]["steps"]
    sticky = [s for s in review_steps if "sticky-pull-request-comment" in s.get("uses", "")]
    assert sticky and sticky[0]["with"]["path"] == "diff.md"
    assert any(s.get("with", {}).get("fetch-depth") == 0 for s in review_steps)
    deploy = [s.get("uses", "") for s in jobs["deploy"]["steps"]]
    assert any(u.startswith("actions/upload-artifact") for u in deploy)
    triggers = load(GITHUB)["on"]  # YAML 1.2: `on` is a string key, not true
    assert set(triggers) == {"pull_request", "push"}
    assert triggers["push"]["branches"] == ["main"]


def test_gitlab_apply_waits_for_a_manual_approval() -> None:
    doc = load(GITLAB)
    apply_job = doc["apply"]
    assert apply_job["needs"] == ["plan"]
    assert [r.get("when") for r in apply_job["rules"]] == ["manual"]
    assert "plan.json" in doc["plan"]["artifacts"]["paths"]


def test_the_parser_rejects_what_the_cli_rejects() -> None:
    assert list(command_lines('incus-images plan --out "p.json" > x && echo ok')) == [
        ["plan", "--out", "p.json"]]
    with pytest.raises(click.UsageError):
        parse(["plan", "--no-such-flag"])
    with pytest.raises(AssertionError, match="no command 'plna'"):
        parse(["plna"])
