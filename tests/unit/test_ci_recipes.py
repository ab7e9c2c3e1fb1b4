"""The CI recipes in examples/ci run only real ``incus-images`` commands with real flags,
and have the shape the README promises.

Every ``incus-images`` command line in a GitHub ``run:`` or a GitLab
``script``/``before_script``/``after_script`` item is parsed by the click command it
names: an unknown command, flag or a missing value fails here, not in a user's
pipeline.  The GitHub workflows are checked for the Terraform-style flow (plan and
apply in two jobs, the apply behind an environment, the saved plan handed over as
an artifact), least-privilege permissions and pinned actions; every snippet
passes ``bash -n``.  Nothing here talks to a network.
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
from typing import Any

import click
import pytest

from reconciler.render.diff import MARKER
from tests.support.cirecipes import (
    BUMP,
    CI,
    GITHUB,
    GITLAB,
    RENOVATE,
    WORKFLOWS,
    all_scripts,
    command_lines,
    github_steps,
    load,
    parse,
    recipe_commands,
    step_named,
)

COMMANDS = recipe_commands()
_PINNED_USES = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")


def commands_of(path_name: str) -> list[tuple[str, list[str]]]:
    return [(w, a) for w, a in COMMANDS if w.startswith(path_name)]


def params(path_name: str, command: str) -> list[dict[str, Any]]:
    return [parse(a).params for _, a in commands_of(path_name) if a[0] == command]


def test_the_recipes_exist_and_parse() -> None:
    assert load(GITHUB)["jobs"] and load(BUMP)["jobs"] and load(GITLAB)["apply"]
    assert load(RENOVATE)["customManagers"]


@pytest.mark.parametrize(("where", "args"), COMMANDS,
                         ids=[f"{w} :: {' '.join(a)}" for w, a in COMMANDS])
def test_every_command_line_is_a_real_command_with_real_flags(
        where: str, args: list[str]) -> None:
    ctx = parse(args)
    assert ctx.command.name == args[0], where


def test_the_recipes_use_the_commands_of_the_flow() -> None:
    github = {a[0] for _, a in commands_of(GITHUB.name)}
    assert github == {"validate", "diff", "plan", "apply"}
    assert {a[0] for _, a in commands_of(BUMP.name)} == {"lock", "diff"}
    assert {a[0] for _, a in commands_of(GITLAB.name)} == {"validate", "diff", "plan", "apply"}


@pytest.mark.parametrize("recipe", [GITHUB.name, GITLAB.name])
def test_review_then_plan_then_apply_of_exactly_the_saved_plan(recipe: str) -> None:
    diffs = params(recipe, "diff")
    assert len(diffs) == 1 and diffs[0]["base"].startswith("origin/")
    assert diffs[0]["fmt"] == "markdown"
    plans = params(recipe, "plan")
    assert [str(p["out"]) for p in plans] == ["plan.json"]
    applies = params(recipe, "apply")
    assert [str(p["plan_file"]) for p in applies] == ["plan.json"]
    # apply reads the same desired-state file the plan was made from (else: stale)
    assert applies[0]["file"] == plans[0]["file"] == diffs[0]["file"]


def test_bump_upgrades_the_lock_and_describes_it_with_the_diff() -> None:
    locks = params(BUMP.name, "lock")
    assert [(p["upgrade"], p["sources"]) for p in locks] == [(True, ())]
    diffs = params(BUMP.name, "diff")
    assert [(d["base"], d["head"], d["fmt"]) for d in diffs] == [("HEAD", None, "markdown")]
    describe = step_named(load(BUMP), "bump", "Describe the bump")
    assert describe["run"].rstrip().endswith("> bump.md")
    pull = [s for _, s in github_steps(load(BUMP))
            if "peter-evans/create-pull-request" in s.get("uses", "")]
    assert len(pull) == 1
    assert pull[0]["with"]["body-path"] == "bump.md"
    assert pull[0]["with"]["add-paths"] == "images.lock.yaml"


# -- the GitHub workflows: jobs, needs, environment, artifacts ---------------------------

def test_github_plan_and_apply_are_two_jobs_and_apply_waits_for_the_environment() -> None:
    jobs = load(GITHUB)["jobs"]
    assert set(jobs) == {"review", "comment", "plan", "apply", "report"}
    plan, apply = jobs["plan"], jobs["apply"]
    assert "environment" not in plan
    assert apply["environment"] == "production" and apply["needs"] == "plan"
    assert apply["if"] == "needs.plan.outputs.changes == 'true'"
    assert plan["outputs"]["changes"] == "${{ steps.plan.outputs.changes }}"
    assert step_named(load(GITHUB), "plan", "Plan and save")["id"] == "plan"
    steps = apply["steps"]
    fetch = next(i for i, s in enumerate(steps)
                 if s.get("uses", "").startswith("actions/download-artifact"))
    run_apply = next(i for i, s in enumerate(steps) if "incus-images apply" in s.get("run", ""))
    assert fetch < run_apply
    assert steps[fetch]["with"] == {"name": "incus-images-plan"}
    assert not any("incus-images plan" in s.get("run", "") for s in steps)


def _needed(jobs: dict[str, Any], name: str) -> set[str]:
    """Every job ``name`` needs, directly or not."""
    needs = jobs[name].get("needs", [])
    direct = {needs} if isinstance(needs, str) else set(needs)
    return direct.union(*(_needed(jobs, n) for n in direct)) if direct else set()


def _uploads(job: dict[str, Any]) -> dict[str, str]:
    return {s["with"]["name"]: s["with"]["path"] for s in job.get("steps", [])
            if s.get("uses", "").startswith("actions/upload-artifact")}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[w.name for w in WORKFLOWS])
def test_every_downloaded_artifact_is_uploaded_by_a_job_it_needs(workflow: Any) -> None:
    jobs = load(workflow)["jobs"]
    downloads = 0
    for name, step in github_steps(load(workflow)):
        if not step.get("uses", "").startswith("actions/download-artifact"):
            continue
        downloads += 1
        wanted = step["with"].get("name") or step["with"]["pattern"]
        offered = {a for n in _needed(jobs, name) for a in _uploads(jobs[n])}
        assert fnmatch.filter(offered, wanted), f"{name}: nothing uploads {wanted!r}"
    assert downloads >= 1
    plan_upload = _uploads(jobs["plan"]) if "plan" in jobs else {"x": "plan.json"}
    assert any("plan.json" in p for p in plan_upload.values())


def _writes(job: dict[str, Any]) -> set[str]:
    return {k for k, v in job["permissions"].items() if v == "write"}


def _holds_incus_secrets(job: dict[str, Any]) -> bool:
    return any("secrets.INCUS_PROD" in str(v) for v in job.get("env", {}).values())


@pytest.mark.parametrize(("workflow", "writers"), [
    (GITHUB, {"comment": {"pull-requests"}, "report": {"pull-requests"}}),
    (BUMP, {"pull-request": {"contents", "pull-requests"}}),
], ids=["github-actions", "bump"])
def test_permissions_are_least_privilege(workflow: Any, writers: dict[str, set[str]]) -> None:
    doc = load(workflow)
    assert doc["permissions"] == {"contents": "read"}
    assert "env" not in doc or not any("secrets." in str(v) for v in doc["env"].values())
    for name, job in doc["jobs"].items():
        assert "permissions" in job, f"{name} must say what it needs"
        assert _writes(job) == writers.get(name, set()), name
        assert not (_holds_incus_secrets(job) and _writes(job)), (
            f"{name} holds the Incus credentials and can write")
    assert any(_holds_incus_secrets(job) for job in doc["jobs"].values())


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[w.name for w in WORKFLOWS])
def test_actions_are_pinned_by_commit_with_the_version_beside(workflow: Any) -> None:
    used = [s["uses"] for _, s in github_steps(load(workflow)) if "uses" in s]
    assert used
    for uses in used:
        assert _PINNED_USES.match(uses), uses
    for line in workflow.read_text(encoding="utf-8").splitlines():
        if "uses:" in line:
            assert re.search(r"@[0-9a-f]{40} # v\d+(\.\d+)*$", line), line


def test_no_expression_is_pasted_into_a_shell_script() -> None:
    """``${{ }}`` inside ``run:`` is script injection; values go through ``env:``."""
    for where, script in all_scripts():
        assert "${{" not in script, where


def test_github_triggers_include_a_schedule_and_every_run_but_pull_requests_plans() -> None:
    doc = load(GITHUB)
    triggers = doc["on"]  # YAML 1.2: `on` is a string key, not true
    assert set(triggers) == {"pull_request", "push", "schedule", "workflow_dispatch"}
    assert triggers["push"]["branches"] == ["main"]
    assert all(len(c["cron"].split()) == 5 for c in triggers["schedule"])
    assert "schedule" not in str(triggers["push"]) and "paths" not in triggers["schedule"]
    assert doc["jobs"]["plan"]["if"] == "github.event_name != 'pull_request'"
    assert doc["jobs"]["review"]["if"] == "github.event_name == 'pull_request'"
    assert load(BUMP)["on"]["schedule"]


def test_a_failed_review_replaces_the_comment_instead_of_leaving_the_old_plan() -> None:
    doc = load(GITHUB)
    failed = step_named(doc, "review", "review failed")
    assert failed["if"] == "failure()" and "> comment.md" in failed["run"]
    assert f'echo "{MARKER}"' in failed["run"]  # the marker the tool's markdown starts with
    handover = step_named(doc, "review", "Hand the comment")
    assert handover["if"] == "success() || failure()"
    assert _uploads(doc["jobs"]["review"]) == {"incus-images-review": "comment.md"}
    comment = doc["jobs"]["comment"]
    assert "needs.review.result == 'failure'" in comment["if"]
    sticky = [s for s in comment["steps"] if "sticky-pull-request-comment" in s.get("uses", "")]
    assert [s["with"] for s in sticky] == [{"header": "incus-images", "path": "comment.md"}]


def test_report_comments_on_the_merged_pull_request_whatever_the_apply_did() -> None:
    report = load(GITHUB)["jobs"]["report"]
    assert report["needs"] == ["plan", "apply"]
    assert report["if"].startswith("always() && github.event_name == 'push'")
    script = step_named(load(GITHUB), "report", "Comment the outcome")["run"]
    assert "commits/${GITHUB_SHA}/pulls" in script and "gh pr comment" in script


# -- GitLab ----------------------------------------------------------------------------

def test_gitlab_apply_waits_for_a_manual_approval_on_push_and_schedule() -> None:
    doc = load(GITLAB)
    apply_job = doc["apply"]
    assert apply_job["needs"] == ["plan"]
    assert [r.get("when") for r in apply_job["rules"]] == ["manual", "manual"]
    schedule = '$CI_PIPELINE_SOURCE == "schedule"'
    assert schedule in [r["if"] for r in apply_job["rules"]]
    assert schedule in [r["if"] for r in doc["plan"]["rules"]]
    assert "plan.json" in doc["plan"]["artifacts"]["paths"]


def test_gitlab_note_search_follows_every_page() -> None:
    note = load(GITLAB)["review"]["after_script"][-1]
    assert "X-Next-Page".lower() in note.lower() and "page=$page" in note
    assert note.count("while ") == 1


# -- installs, Renovate, shell -----------------------------------------------------------

def test_the_tool_is_installed_pinned_and_no_registry_host_is_named() -> None:
    installs = [(w, s) for w, s in all_scripts() if re.search(r"\bpipx? install\b", s)]
    assert len(installs) == 5  # review, plan, apply, bump (GitHub); before_script (GitLab)
    for where, script in installs:
        assert '"incus-images==${INCUS_IMAGES_VERSION}"' in script, where
    versions = [load(GITHUB)["env"], load(BUMP)["env"], load(GITLAB)["variables"]]
    assert all(_VERSION.match(v["INCUS_IMAGES_VERSION"]) for v in versions)
    for path in CI.iterdir():
        text = path.read_text(encoding="utf-8").lower()
        assert "pypi.org" not in text and "pythonhosted" not in text, path.name


def _js_regex(pattern: str) -> re.Pattern[str]:
    """A Renovate (JavaScript) regex as Python's: named groups are ``(?P<name>``."""
    return re.compile(pattern.replace("(?<", "(?P<"))


@pytest.mark.parametrize(("recipe", "installed_as"), [
    (GITHUB, ".github/workflows/incus-images.yml"),
    (BUMP, ".github/workflows/incus-images-bump.yml"),
    (GITLAB, ".gitlab-ci.yml"),
], ids=["github-actions", "bump", "gitlab"])
def test_renovate_finds_the_pinned_version_where_the_recipes_are_copied(
        recipe: Any, installed_as: str) -> None:
    text = recipe.read_text(encoding="utf-8")
    assert f"Copy to {installed_as}" in text
    manager = load(RENOVATE)["customManagers"][0]
    assert manager["customType"] == "regex"
    files = [_js_regex(p.strip("/")) for p in manager["managerFilePatterns"]]
    assert any(f.search(installed_as) for f in files)
    found = [m.groupdict() for s in manager["matchStrings"] for m in _js_regex(s).finditer(text)]
    pinned = re.search(r'INCUS_IMAGES_VERSION: "([^"]+)"', text)
    assert pinned
    assert found == [{"datasource": "pypi", "depName": "incus-images",
                      "currentValue": pinned.group(1)}]


def test_every_shell_snippet_is_valid_bash() -> None:
    scripts = list(all_scripts())
    assert len(scripts) > 20
    for where, script in scripts:
        result = subprocess.run(["bash", "-n", "-c", script], capture_output=True, text=True,
                                check=False)
        assert result.returncode == 0, f"{where}: {result.stderr}"


@pytest.mark.parametrize(("recipe", "schema"), [
    (GITHUB, "vendor.github-workflows"), (BUMP, "vendor.github-workflows"),
    (GITLAB, "vendor.gitlab-ci"), (RENOVATE, "vendor.renovate"),
], ids=["github-actions", "bump", "gitlab", "renovate"])
def test_the_recipes_match_the_published_schemas(recipe: Any, schema: str) -> None:
    """check-jsonschema's vendored schemas (SchemaStore, Renovate): no network."""
    checker = pytest.importorskip("check_jsonschema", reason="the [recipes] extra")
    from click.testing import CliRunner

    result = CliRunner().invoke(checker.main, ["--builtin-schema", schema, str(recipe)])
    assert result.exit_code == 0, result.output


def test_the_parser_rejects_what_the_cli_rejects() -> None:
    assert list(command_lines('incus-images plan --out "p.json" > x && echo ok')) == [
        ["plan", "--out", "p.json"]]
    assert list(command_lines("incus-images validate -f a.yaml 2>&1 | tee v.log")) == [
        ["validate", "-f", "a.yaml"]]
    assert list(command_lines("incus-images diff --base x \\\n  --format markdown 2> e")) == [
        ["diff", "--base", "x", "--format", "markdown"]]
    with pytest.raises(click.UsageError):
        parse(["plan", "--no-such-flag"])
    with pytest.raises(AssertionError, match="no command 'plna'"):
        parse(["plna"])
