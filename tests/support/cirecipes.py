"""The CI recipes in examples/ci, read as the tests need them.

* :func:`command_lines` finds every ``incus-images`` invocation in a shell
  script, tokenised as a shell would (GitHub ``${{ }}`` expressions and ``$VARS``
  are opaque words; redirections and their targets are dropped, ``2>&1`` too).
* :func:`parse` parses one with the real click command tree: nothing runs.
* :func:`run_script` runs a recipe's shell snippet as the CI would (``bash -eo
  pipefail``, GitHub's ``shell: bash``), in a directory and an environment the
  test gives, with nothing inherited but ``PATH``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import click
from ruamel.yaml import YAML

from reconciler.cli import cli

CI = Path(__file__).resolve().parents[2] / "examples" / "ci"
GITHUB = CI / "github-actions.yml"
BUMP = CI / "github-bump-images.yml"
GITLAB = CI / "gitlab-ci.yml"
RENOVATE = CI / "renovate.json"
WORKFLOWS = (GITHUB, BUMP)

EXPR = re.compile(r"\$\{\{.*?\}\}")
_OPERATORS = {"|", "||", "&&", ";", "&", "(", ")"}
_REDIRECTS = {">", ">>", "<", ">&", "<&", "&>"}


def load(path: Path) -> Any:
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


def github_steps(doc: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    for job_name, job in doc["jobs"].items():
        for step in job.get("steps", []):
            yield job_name, step


def github_scripts(doc: Any) -> Iterator[tuple[str, str]]:
    for job_name, step in github_steps(doc):
        if "run" in step:
            yield f"{job_name}: {step.get('name', step['run'])}", step["run"]


def gitlab_scripts(doc: Any) -> Iterator[tuple[str, str]]:
    for job_name, job in doc.items():
        if not isinstance(job, dict):
            continue
        for key in ("before_script", "script", "after_script"):
            for line in job.get(key, []) or []:
                yield f"{job_name}.{key}", line


def all_scripts() -> Iterator[tuple[str, str]]:
    for path in WORKFLOWS:
        for where, script in github_scripts(load(path)):
            yield f"{path.name}: {where}", script
    for where, script in gitlab_scripts(load(GITLAB)):
        yield f"{GITLAB.name}: {where}", script


def _tokens(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)


def _commands_in(tokens: list[str]) -> Iterator[list[str]]:
    current: list[str] = []
    skip = False
    for token in [*tokens, ";"]:
        if skip:
            skip = False
            continue
        if token in _REDIRECTS:
            if current and current[-1].isdigit():
                current.pop()  # the file descriptor of `2>file`, `2>&1`
            skip = True
            continue
        if token in _OPERATORS:
            if current and current[0] == "incus-images":
                yield current[1:]
            current = []
            continue
        current.append(token)


def command_lines(script: str) -> Iterator[list[str]]:
    """Every ``incus-images`` invocation in a shell script, as its argument list."""
    text = EXPR.sub("GITHUB_EXPRESSION", script.replace("\\\n", " "))
    for line in text.splitlines():
        if not line.lstrip().startswith("#"):
            yield from _commands_in(_tokens(line))


def recipe_commands() -> list[tuple[str, list[str]]]:
    return [(where, args) for where, script in all_scripts() for args in command_lines(script)]


def parse(args: list[str]) -> click.Context:
    """Parse ``incus-images ARGS`` with the real click commands (no command runs)."""
    assert args, "a bare incus-images"
    name, rest = args[0], args[1:]
    command = cli.commands.get(name)
    assert command is not None, f"incus-images has no command {name!r}"
    parent = click.Context(cli, info_name="incus-images")
    return command.make_context(name, list(rest), parent=parent)


def step_named(doc: Any, job: str, words: str) -> dict[str, Any]:
    """The one step of ``job`` whose name contains ``words``."""
    found = [s for s in doc["jobs"][job]["steps"] if words in s.get("name", "")]
    assert len(found) == 1, f"{job}: {len(found)} steps named like {words!r}"
    return found[0]


def run_script(script: str, cwd: Path, env: Mapping[str, str],
               path_first: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with ``bash -eo pipefail`` in ``cwd``; only ``PATH`` is inherited."""
    search = os.environ.get("PATH", "/usr/bin:/bin")
    if path_first is not None:
        search = f"{path_first}{os.pathsep}{search}"
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                          cwd=cwd, env={"PATH": search, **env}, capture_output=True,
                          text=True, timeout=60, check=False)
