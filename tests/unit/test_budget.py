"""Markdown cut to a size budget: GitHub's comment limit and the step summary limit."""

from __future__ import annotations

import re

from reconciler.core.diff import DiffReport, EntryDiff, FieldDiff
from reconciler.model.plan import Action, Change, Plan, PlanWarning, Untouched, summarize
from reconciler.render import markdown
from reconciler.render.budget import COMMENT_BUDGET, GITHUB_COMMENT_LIMIT, fit, size
from reconciler.render.diff import MARKER, render_markdown
from tests.support.builders import fp_of


def huge_plan(n: int = 3000) -> Plan:
    changes = []
    for i in range(n):
        fp = fp_of("img", i)
        target = "local" if i % 2 else "prod"
        changes.append(Change(action=Action.IMAGE_DOWNLOAD, target=target, project="default",
                              reason="declared, not in store | with a pipe", fingerprint=fp,
                              source=f"images:distro-{i}/1", size=100_000_000))
        changes.append(Change(action=Action.ALIAS_CREATE, target=target, project="default",
                              reason=f"declared by images:distro-{i}/1", alias=f"d{i}", to=fp))
    ordered = tuple(sorted(changes, key=Change.sort_key))
    left = tuple(Untouched(target="local", fingerprint=fp_of("x", i), aliases=(f"x{i}",))
                 for i in range(500))
    return Plan(changes=ordered, summary=summarize(ordered), untouched=left,
                warnings=(PlanWarning(code="lock.missing", target="local", image="images:a/1",
                                      message="not in the lock file"),))


def report(plan: Plan, entries: int = 2000) -> DiffReport:
    diffs = [EntryDiff("changed", "local", f"images:distro-{i}/1", "container", None,
                       (FieldDiff("auto_update", False, True),)) for i in range(entries)]
    return DiffReport(file_name="images.yaml", lock_name="images.lock.yaml",
                      base="origin/main", head="working tree", entries=diffs, settings=[],
                      locks=[], plan=plan)


def table_rows_are_well_formed(text: str) -> None:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("| ---"):
            columns = line.count("|")
            j = i + 1
            while j < len(lines) and lines[j].startswith("|"):
                # escaped pipes inside cells do not count as separators
                assert len(re.findall(r"(?<!\\)\|", lines[j])) == columns, lines[j]
                j += 1


def test_small_text_is_returned_unchanged() -> None:
    text = "**Plan:** 1 to download.\n\n| a | b |\n| --- | --- |\n| 1 | 2 |\n"
    assert fit(text, 1000, what="x", hint="y") == text


def test_huge_diff_comment_stays_under_githubs_limit_with_a_note() -> None:
    full = render_markdown(report(huge_plan()), budget=10**9)
    assert len(full) > 5 * GITHUB_COMMENT_LIMIT  # really huge
    cut = render_markdown(report(huge_plan()))
    assert len(cut) < GITHUB_COMMENT_LIMIT and size(cut) <= COMMENT_BUDGET
    assert cut.startswith(MARKER + "\n**incus-images diff**")
    assert "**Warnings (1)**" in cut.split("### Plan")[0]  # warnings stay first
    note = cut.rstrip().splitlines()[-1]
    assert note.startswith("> **Note:** cut to fit GitHub's 65,535-character comment limit: ")
    assert "rows and list items are not shown" in note
    assert "more not shown" in cut
    # Every section keeps its heading, and rows are shared between them.
    for heading in ("#### Target `local`", "#### Target `prod`",
                    "Changes to <code>images.yaml</code>"):
        assert heading in cut
    assert cut.count("<details") == cut.count("</details>")
    table_rows_are_well_formed(cut)


def test_cut_keeps_small_sections_whole() -> None:
    plan = huge_plan()
    cut = render_markdown(report(plan, entries=3))
    for i in range(3):
        assert f"images:distro-{i}/1 (container, host architecture)" in cut


def test_plan_markdown_fits_a_step_summary_budget() -> None:
    text = markdown.render_plan(huge_plan(20_000))
    assert size(text) > 1_000_000
    cut = fit(text, 1_000_000, what="GitHub's 1 MiB step summary limit", hint="See the log.")
    assert size(cut) <= 1_000_000
    assert cut.startswith("**Plan:** 20000 to download")
    assert cut.rstrip().endswith("See the log.")


def test_fixed_parts_too_big_are_cut_at_a_line_with_details_closed() -> None:
    text = "<details>\n<summary>x</summary>\n\n" + "\n".join(
        f"paragraph {i} " + "z" * 80 for i in range(2000)) + "\n</details>\n"
    cut = fit(text, 5_000, what="a limit", hint="Full output elsewhere.")
    assert size(cut) <= 5_000
    assert cut.count("<details") == cut.count("</details>")
    assert cut.rstrip().endswith("Full output elsewhere.")


def test_one_overlong_row_is_shortened_not_dropped_whole() -> None:
    row = "| `+ image.download` | " + "y" * 50_000 + " |"
    text = "| a | b |\n| --- | --- |\n" + row + "\n"
    cut = fit(text, 20_000, what="a limit", hint="h")
    assert size(cut) <= 20_000 and "yyyy" in cut
    table_rows_are_well_formed(cut)
