"""``$GITHUB_STEP_SUMMARY``: appended to, never overwritten, kept under 1 MiB."""

from __future__ import annotations

from pathlib import Path

from reconciler.adapters import stepsummary
from reconciler.render.budget import STEP_SUMMARY_BUDGET, size


def test_nothing_happens_without_the_variable(tmp_path: Path) -> None:
    assert stepsummary.append("**Plan:** x\n", {}) is None
    assert list(tmp_path.iterdir()) == []


def test_appends_after_earlier_content(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    path.write_text("# Earlier step\n")
    env = {"GITHUB_STEP_SUMMARY": str(path)}
    assert stepsummary.append("**Plan:** 1 to download.\n", env) is None
    assert stepsummary.append("**No changes.**\n", env) is None
    assert path.read_text() == ("# Earlier step\n\n**Plan:** 1 to download.\n"
                                "\n**No changes.**\n")


def test_a_huge_summary_is_cut_to_what_the_file_has_left(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    path.write_text("x" * 500_000 + "\n")
    rows = "\n".join(f"| `+ image.download` | `images:d{i}/1` | `abc` | r |"
                     for i in range(40_000))
    text = "**Plan:** many.\n\n| a | b | c | d |\n| --- | --- | --- | --- |\n" + rows + "\n"
    assert stepsummary.append(text, {"GITHUB_STEP_SUMMARY": str(path)}) is None
    assert size(path.read_text()) <= STEP_SUMMARY_BUDGET
    assert "1 MiB step summary limit" in path.read_text()


def test_an_unwritable_summary_is_reported_not_raised(tmp_path: Path) -> None:
    problem = stepsummary.append("x\n", {"GITHUB_STEP_SUMMARY": str(tmp_path)})
    assert problem is not None and problem.startswith("cannot append to $GITHUB_STEP_SUMMARY")
