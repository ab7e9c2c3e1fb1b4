"""The CI recipes' shell snippets do what they say, run as the CI would run them.

Each test takes a snippet out of examples/ci and runs it with ``bash -eo pipefail``
in a temporary directory.  What a snippet calls out to is replaced: a fake
``incus-images`` or ``gh`` on ``PATH`` (``gh --jq`` filters are applied with the
real ``jq``), and GitLab's API by a server on 127.0.0.1 that pages its notes
the way GitLab does (``X-Next-Page``, empty on the last page).
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from reconciler.render.diff import MARKER
from tests.support.cirecipes import BUMP, GITHUB, GITLAB, load, run_script, step_named

SHA = "0123456789abcdef0123456789abcdef01234567"


def fake_tool(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text(f"#!/usr/bin/env bash\n{body}\n", encoding="utf-8")
    path.chmod(0o755)


def test_the_workflows_run_their_scripts_with_pipefail() -> None:
    for workflow in (GITHUB, BUMP):
        assert load(workflow)["defaults"] == {"run": {"shell": "bash"}}


# -- plan: the exit status becomes the apply job's condition -------------------------------

@pytest.mark.parametrize(("status", "output", "ok"), [
    (0, "changes=false", True), (2, "changes=true", True), (1, "", False)])
def test_plan_tells_the_apply_job_whether_there_is_anything_to_apply(
        tmp_path: Path, status: int, output: str, ok: bool) -> None:
    fake_tool(tmp_path / "bin", "incus-images", f'echo "# plan"; exit {status}')
    script = step_named(load(GITHUB), "plan", "Plan and save")["run"]
    out = tmp_path / "github_output"
    out.touch()
    result = run_script(script, tmp_path, {"GITHUB_OUTPUT": str(out)}, tmp_path / "bin")
    assert (result.returncode == 0) is ok, result.stderr
    assert out.read_text().strip() == output
    assert (tmp_path / "plan.md").read_text() == "# plan\n"


def test_apply_fails_the_job_when_the_tool_refuses_even_through_tee(tmp_path: Path) -> None:
    fake_tool(tmp_path / "bin", "incus-images",
              'echo "incus-images: error: plan.json is stale: local changed" >&2; exit 1')
    script = step_named(load(GITHUB), "apply", "Apply exactly")["run"]
    result = run_script(script, tmp_path, {}, tmp_path / "bin")
    assert result.returncode == 1
    assert "stale" in (tmp_path / "apply.log").read_text()


# -- review: a failure replaces the sticky comment ------------------------------------------

def test_a_failed_review_writes_a_comment_that_says_so(tmp_path: Path) -> None:
    (tmp_path / "validate.log").write_text("images.yaml: valid (1 image, 1 target)\n")
    (tmp_path / "diff.err").write_text("incus-images: error: local: connection refused\n")
    (tmp_path / "comment.md").write_text(f"{MARKER}\nthe previous plan\n")
    script = step_named(load(GITHUB), "review", "review failed")["run"]
    env = {"HEAD_SHA": SHA, "GITHUB_SERVER_URL": "https://github.example",
           "GITHUB_REPOSITORY": "team/images", "GITHUB_RUN_ID": "99"}
    result = run_script(script, tmp_path, env)
    assert result.returncode == 0, result.stderr
    comment = (tmp_path / "comment.md").read_text()
    assert comment.startswith(f"{MARKER}\n### :x: incus-images could not review {SHA[:12]}\n")
    assert "local: connection refused" in comment and "the previous plan" not in comment
    assert "https://github.example/team/images/actions/runs/99" in comment


def test_a_review_that_failed_before_any_log_still_writes_the_comment(tmp_path: Path) -> None:
    script = step_named(load(GITHUB), "review", "review failed")["run"]
    result = run_script(script, tmp_path, {"HEAD_SHA": SHA})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "comment.md").read_text().startswith(MARKER)


def test_the_diff_step_fails_with_the_tool_and_still_shows_its_errors(tmp_path: Path) -> None:
    fake_tool(tmp_path / "bin", "incus-images",
              'echo "<!-- incus-images:diff -->"; echo "incus-images: error: nope" >&2; exit 1')
    script = step_named(load(GITHUB), "review", "Diff against")["run"]
    result = run_script(script, tmp_path, {"GITHUB_BASE_REF": "main"}, tmp_path / "bin")
    assert result.returncode == 1 and "error: nope" in result.stderr
    assert (tmp_path / "diff.err").read_text() == "incus-images: error: nope\n"


# -- report: the apply outcome on the merged pull request ------------------------------------

GH = """\
printf '%s\\n' "$*" >> "$GH_LOG"
if [ "$1" = api ]; then
  [ "$2" = "repos/$GITHUB_REPOSITORY/commits/$GITHUB_SHA/pulls" ] || exit 9
  [ "$3" = --jq ] || exit 9
  jq -r "$4" "$FAKE_PULLS"
elif [ "$1 $2" = "pr comment" ]; then
  cp "${@: -1}" "$COMMENT_OUT"
fi"""


def run_report(tmp_path: Path, pulls: list[dict[str, Any]], plan_result: str,
               apply_result: str) -> tuple[subprocess.CompletedProcess[str], str, str]:
    fake_tool(tmp_path / "bin", "gh", GH)
    (tmp_path / "pulls.json").write_text(json.dumps(pulls))
    script = step_named(load(GITHUB), "report", "Comment the outcome")["run"]
    env = {"GH_LOG": str(tmp_path / "gh.log"), "FAKE_PULLS": str(tmp_path / "pulls.json"),
           "COMMENT_OUT": str(tmp_path / "posted.md"), "GITHUB_REPOSITORY": "team/images",
           "GITHUB_SHA": SHA, "GITHUB_SERVER_URL": "https://github.example",
           "GITHUB_RUN_ID": "7", "PLAN_RESULT": plan_result, "APPLY_RESULT": apply_result,
           "GH_TOKEN": "t"}
    result = run_script(script, tmp_path, env, tmp_path / "bin")
    posted = tmp_path / "posted.md"
    log = (tmp_path / "gh.log").read_text() if (tmp_path / "gh.log").exists() else ""
    return result, log, posted.read_text() if posted.exists() else ""


MERGED = [{"number": 3, "merged_at": None}, {"number": 42, "merged_at": "2026-11-02T10:00:00Z"}]


def test_report_comments_the_applied_plan_on_the_merged_pull_request(tmp_path: Path) -> None:
    (tmp_path / "plan.md").write_text("#### local\n+ download images:debian/12\n")
    (tmp_path / "apply.log").write_text("applied 1 change\n")
    result, log, posted = run_report(tmp_path, MERGED, "success", "success")
    assert result.returncode == 0, result.stderr
    assert "pr comment 42 --repo team/images --body-file comment.md" in log
    assert posted.startswith(f"<!-- incus-images:apply -->\n### incus-images apply of "
                             f"{SHA[:12]}: :white_check_mark: applied\n")
    assert "+ download images:debian/12" in posted and "applied 1 change" in posted


@pytest.mark.parametrize(("plan", "apply", "says"), [
    ("success", "failure", "apply failed"),
    ("success", "skipped", "nothing to apply"),
    ("success", "cancelled", "apply cancelled"),
    ("failure", "skipped", "plan failure: nothing was applied"),
])
def test_report_says_what_happened(tmp_path: Path, plan: str, apply: str, says: str) -> None:
    result, _, posted = run_report(tmp_path, MERGED, plan, apply)
    assert result.returncode == 0, result.stderr
    assert says in posted.splitlines()[1]


def test_report_comments_nothing_for_a_push_that_no_pull_request_merged(
        tmp_path: Path) -> None:
    result, log, posted = run_report(tmp_path, [{"number": 3, "merged_at": None}],
                                     "success", "success")
    assert result.returncode == 0, result.stderr
    assert "no merged pull request" in result.stdout
    assert "pr comment" not in log and posted == ""


# -- bump: a pull request only when the lock file changed -------------------------------------

def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
                   cwd=cwd, check=True, capture_output=True)


@pytest.mark.parametrize(("change", "expected"), [
    ("none", "changed=false"), ("edit", "changed=true"), ("new", "changed=true")])
def test_bump_opens_a_pull_request_only_when_the_lock_file_changed(
        tmp_path: Path, change: str, expected: str) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "images.yaml").write_text("images: []\n")
    if change != "new":
        (repo / "images.lock.yaml").write_text("version: 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "init")
    if change != "none":
        (repo / "images.lock.yaml").write_text("version: 1\nimages: []\n")
    (repo / "unrelated.txt").write_text("not the lock file\n")
    out = tmp_path / "github_output"
    out.touch()
    script = step_named(load(BUMP), "bump", "Did the lock file change")["run"]
    result = run_script(script, repo, {"GITHUB_OUTPUT": str(out)})
    assert result.returncode == 0, result.stderr
    assert out.read_text().strip() == expected


# -- GitLab: the sticky note, searched on every page ------------------------------------------

class _Notes(BaseHTTPRequestHandler):
    notes: ClassVar[list[dict[str, Any]]] = []
    writes: ClassVar[list[tuple[str, str, dict[str, Any]]]] = []
    pages_read: ClassVar[list[int]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, next_page: str = "") -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Next-Page", next_page)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        assert self.headers["PRIVATE-TOKEN"] == "bot-token"
        query = parse_qs(urlsplit(self.path).query)
        per_page = int(query.get("per_page", ["20"])[0])  # GitLab's defaults
        page = int(query.get("page", ["1"])[0])
        self.pages_read.append(page)
        chunk = self.notes[(page - 1) * per_page: page * per_page]
        more = page * per_page < len(self.notes)
        self._send(200, json.dumps(chunk).encode(), str(page + 1) if more else "")

    def _write(self) -> None:
        length = int(self.headers["Content-Length"])
        body = json.loads(self.rfile.read(length))
        self.writes.append((self.command, urlsplit(self.path).path, body))
        self._send(200, b"{}")

    do_PUT = _write
    do_POST = _write


@pytest.fixture
def gitlab() -> Iterator[tuple[str, type[_Notes]]]:
    handler = type("Notes", (_Notes,), {"notes": [], "writes": [], "pages_read": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v4", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def run_note(tmp_path: Path, api: str, job_status: str) -> subprocess.CompletedProcess[str]:
    script = load(GITLAB)["review"]["after_script"][-1]
    env = {"CI_API_V4_URL": api, "CI_PROJECT_ID": "7", "CI_MERGE_REQUEST_IID": "3",
           "INCUS_IMAGES_BOT_TOKEN": "bot-token", "CI_JOB_STATUS": job_status,
           "CI_COMMIT_SHORT_SHA": SHA[:8], "CI_JOB_URL": "https://gitlab.example/jobs/1"}
    return run_script(script, tmp_path, env)


NOTES = "/api/v4/projects/7/merge_requests/3/notes"


def test_gitlab_updates_its_note_found_on_the_third_page(
        tmp_path: Path, gitlab: tuple[str, type[_Notes]]) -> None:
    api, server = gitlab
    server.notes = [{"id": i, "body": f"comment {i}"} for i in range(1, 251)]
    server.notes[244]["body"] = f"{MARKER}\nthe old plan"
    (tmp_path / "diff.md").write_text(f"{MARKER}\nthe new plan\n")
    result = run_note(tmp_path, api, "success")
    assert result.returncode == 0, result.stderr
    assert server.pages_read == [1, 2, 3]
    assert server.writes == [("PUT", f"{NOTES}/245", {"body": f"{MARKER}\nthe new plan\n"})]


def test_gitlab_posts_a_new_note_after_reading_every_page(
        tmp_path: Path, gitlab: tuple[str, type[_Notes]]) -> None:
    api, server = gitlab
    server.notes = [{"id": i, "body": f"comment {i}"} for i in range(1, 201)]
    (tmp_path / "diff.md").write_text(f"{MARKER}\nthe plan\n")
    result = run_note(tmp_path, api, "success")
    assert result.returncode == 0, result.stderr
    assert server.pages_read == [1, 2]
    assert server.writes == [("POST", NOTES, {"body": f"{MARKER}\nthe plan\n"})]


def test_gitlab_says_in_its_note_that_the_review_failed(
        tmp_path: Path, gitlab: tuple[str, type[_Notes]]) -> None:
    api, server = gitlab
    server.notes = [{"id": 5, "body": f"{MARKER}\nthe old plan"}]
    (tmp_path / "diff.md").write_text("")  # the redirection made it; diff then failed
    result = run_note(tmp_path, api, "failed")
    assert result.returncode == 0, result.stderr
    [(method, path, body)] = server.writes
    assert (method, path) == ("PUT", f"{NOTES}/5")
    assert body["body"].startswith(f"{MARKER}\n### :x: incus-images could not review {SHA[:8]}")
    assert "https://gitlab.example/jobs/1" in body["body"]
