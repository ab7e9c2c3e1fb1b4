"""The plan as GitHub-flavoured markdown, for pull-request comments and ``GITHUB_STEP_SUMMARY``.

Pure, like the text renderer, and built from the same pieces so both always say
the same thing.  Layout: a one-line summary, the warnings as a list, then per
target (name order) a table ``| action | image / alias | fingerprint | reason |``
in apply order, followed by the images left alone.  Every cell is escaped so a
``|`` or a newline in a reason cannot break the table.
"""

from __future__ import annotations

from reconciler.model.fingerprint import short_fingerprint
from reconciler.model.plan import Change, Plan
from reconciler.render.labels import MARKERS, fingerprints, name_of
from reconciler.render.text import (
    field_lines,
    notes,
    project_of,
    summary_phrase,
    targets_of,
    untouched_text,
)


def code(text: str) -> str:
    """An inline code span that survives backticks inside ``text``."""
    fence = "``" if "`" in text else "`"
    pad = " " if "`" in text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def cell(text: str) -> str:
    """Escape a table cell: pipes are backslashed, line breaks become spaces."""
    return " ".join(text.replace("|", "\\|").split())


def _fingerprint_cell(change: Change) -> str:
    before, after = fingerprints(change)
    if before and after:
        return f"{code(short_fingerprint(before))} → {code(short_fingerprint(after))}"
    fp = before or after
    return code(short_fingerprint(fp)) if fp else ""


def _reason_cell(change: Change) -> str:
    parts = [change.reason]
    parts.extend(notes(change))
    parts.extend(code(line) for line in field_lines(change.fields))
    return "; ".join(parts)


def change_row(change: Change) -> str:
    """One table row: ``| action | image / alias | fingerprint | reason |``."""
    cells = [
        code(f"{MARKERS[change.action]} {change.action.value}"),
        code(name_of(change)),
        _fingerprint_cell(change),
        _reason_cell(change),
    ]
    return "| " + " | ".join(cell(c) for c in cells) + " |"


def render_plan(plan: Plan, *, file_name: str = "images.yaml") -> str:
    """The whole plan as markdown, newline-terminated."""
    phrase = summary_phrase(plan)
    failed = plan.failed_targets
    if phrase is None and not failed:
        lines = [f"**No changes.** The image stores match {code(file_name)}."]
    else:
        lines = [f"**Plan:** {phrase or 'no changes'}."]
    if failed:
        lines += ["", f"**Not planned ({len(failed)})**", ""]
        lines += [f"- {code(t)}: {' '.join(why.split())}" for t, why in failed.items()]
    if plan.warnings:
        lines += ["", f"**Warnings ({len(plan.warnings)})**", ""]
        lines += [
            f"- {code(w.code)} on {code(w.target)}{', ' + code(w.image) if w.image else ''}: "
            f"{' '.join(w.message.split())}"
            for w in plan.warnings
        ]
    if plan.notes:
        lines += ["", "**Notes** (could not be checked)", ""]
        lines += [f"- {' '.join(n.split())}" for n in plan.notes]
    for target in targets_of(plan):
        project = project_of(plan, target)
        heading = f"### Target {code(target)}" + (f" (project {code(project)})" if project else "")
        lines += ["", heading]
        changes = plan.for_target(target)
        if changes:
            lines += ["", "| action | image / alias | fingerprint | reason |",
                      "| --- | --- | --- | --- |"]
            lines += [change_row(c) for c in changes]
        left = [u for u in plan.untouched if u.target == target]
        if left:
            lines += ["", "Left alone (not managed by this file):", ""]
            lines += [f"- {untouched_text(u)}" for u in left]
    return "\n".join(lines) + "\n"
