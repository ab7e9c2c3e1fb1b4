"""``incus-images diff`` as text (CI logs) and as markdown (one pull-request comment).

Pure: a function of the :class:`DiffReport` alone.  Both formats say, in order:
what changed in the desired-state file (entries added, removed and changed field
by field, then other settings), what changed in the lock file, notes, then the
head's plan against the live stores.  Markdown puts a one-line summary and the
plan's warnings first, folds the file and lock changes and the images left alone
into ``<details>``, gives every target its own table, starts with the
:data:`MARKER` comment (so a workflow can find and update its one comment), and
is cut to :data:`~reconciler.render.budget.COMMENT_BUDGET` with a note saying
what was cut (GitHub refuses comments over 65,535 characters).
"""

from __future__ import annotations

import html

from reconciler.core.diff import DiffReport, EntryDiff, FieldDiff
from reconciler.core.lock import LockChange
from reconciler.model.fingerprint import short_fingerprint
from reconciler.model.lock import LockedBuild
from reconciler.render import text
from reconciler.render.budget import COMMENT_BUDGET, fit
from reconciler.render.markdown import cell, change_row, code
from reconciler.render.units import plural, value

MARKER = "<!-- incus-images:diff -->"
_MARKS = {"added": "+", "removed": "-", "changed": "~"}


# -- shared phrasing ---------------------------------------------------------------------------

def file_phrase(report: DiffReport) -> str:
    """``2 entries added, 1 changed, 1 setting changed`` or ``no changes``."""
    if report.entries is None:
        return "not compared"
    counts = {k: sum(1 for e in report.entries if e.kind == k)
              for k in ("added", "removed", "changed")}
    parts = [_entries_phrase(counts)] if any(counts.values()) else []
    if report.settings:
        parts.append(plural(len(report.settings), "setting") + " changed")
    return ", ".join(parts) or "no changes"


def _entries_phrase(counts: dict[str, int]) -> str:
    items = [(k, n) for k, n in counts.items() if n]
    first_kind, first_n = items[0]
    out = [f"{plural(first_n, 'entry', 'entries')} {first_kind}"]
    out += [f"{n} {k}" for k, n in items[1:]]
    return ", ".join(out)


def lock_phrase(report: DiffReport) -> str:
    """``1 entry moved, 1 added`` or ``no changes``."""
    kinds = {"added": 0, "removed": 0, "moved": 0}
    for c in report.locks:
        kinds["added" if c.before is None else "removed" if c.after is None else "moved"] += 1
    items = [(k, n) for k, n in kinds.items() if n]
    if not items:
        return "no changes"
    out = [f"{plural(items[0][1], 'entry', 'entries')} {items[0][0]}"]
    out += [f"{n} {k}" for k, n in items[1:]]
    return ", ".join(out)


def _build(b: LockedBuild | None) -> str:
    if b is None:
        return "(none)"
    return short_fingerprint(b.fingerprint) + (f" ({b.version})" if b.version else "")


def _field_text(f: FieldDiff, *, added: bool) -> str:
    if added:
        return f"{f.name}: {value(f.after)}"
    return f"{f.name}: {value(f.before)} -> {value(f.after)}"


def _lock_label(c: LockChange) -> str:
    return c.key.label()


# -- text --------------------------------------------------------------------------------------

def render_text(report: DiffReport) -> str:
    """The whole diff as text, newline-terminated."""
    blocks: list[list[str]] = []
    head = f"{report.file_name} ({report.base} -> {report.head})"
    if report.entries is None:
        blocks.append([f"Changes to {head}: not compared (see notes)."])
    elif not report.file_changed:
        blocks.append([f"No changes to {head}."])
    else:
        block = [f"Changes to {head}:"]
        for e in report.entries:
            block.append(f"  {_MARKS[e.kind]} {e.label()} on {e.target}")
            if e.kind != "removed":
                block += [f"      {_field_text(f, added=e.kind == 'added')}" for f in e.fields]
        block += [f"  ~ {_field_text(f, added=False)}" for f in report.settings]
        blocks.append(block)
    if not report.locks:
        blocks.append([f"No changes to {report.lock_name}."])
    else:
        block = [f"Changes to {report.lock_name}:"]
        for c in report.locks:
            if c.before is None:
                block.append(f"  + {_lock_label(c)}: {_build(c.after)}")
            elif c.after is None:
                block.append(f"  - {_lock_label(c)}: was {_build(c.before)}")
            else:
                block.append(f"  ~ {_lock_label(c)}: {_build(c.before)} -> {_build(c.after)}")
        blocks.append(block)
    if report.notes:
        blocks.append(["Notes:"] + [f"  * {n}" for n in report.notes])
    blocks.append([f"Plan of {report.file_name} ({report.head}) against the live stores:"])
    out = "\n\n".join("\n".join(b) for b in blocks) + "\n\n"
    return out + text.render_plan(report.plan, file_name=report.file_name)


# -- markdown ----------------------------------------------------------------------------------

def _hcode(text: str) -> str:
    """Inline code inside HTML (``<summary>`` does not render markdown)."""
    return f"<code>{html.escape(text)}</code>"


def _details(summary: str, body: list[str], *, open_: bool = False) -> list[str]:
    """A folded block; ``summary`` is HTML (escape with :func:`_hcode` / ``html.escape``)."""
    tag = "<details open>" if open_ else "<details>"
    return [tag, f"<summary>{summary}</summary>", "", *body, "", "</details>"]


def _entry_cells(e: EntryDiff) -> str:
    if e.kind == "removed":
        return "removed"
    parts = [code(_field_text(f, added=e.kind == "added")) for f in e.fields]
    return ("added: " if e.kind == "added" else "") + "; ".join(parts)


def summary_line(report: DiffReport) -> str:
    """The one line a reviewer reads first."""
    phrase = text.summary_phrase(report.plan)
    plan = f"**Plan:** {phrase}" if phrase else "**Plan:** no changes"
    parts = [f"{code(report.file_name)}: {file_phrase(report)}"]
    if report.locks:
        parts.append(f"{code(report.lock_name)}: {lock_phrase(report)}")
    parts.append(plan)
    if report.plan.warnings:
        parts.append(f"⚠️ {plural(len(report.plan.warnings), 'warning')}")
    where = f"{code(report.base)} → {code(report.head)}"
    return f"**incus-images diff** {where}: " + " · ".join(parts) + "."


def render_markdown(report: DiffReport, *, budget: int = COMMENT_BUDGET) -> str:
    """The diff as one pull-request comment (see module doc), within ``budget`` bytes."""
    plan = report.plan
    lines = [MARKER, summary_line(report)]
    if plan.warnings:
        lines += ["", f"**Warnings ({len(plan.warnings)})**", ""]
        lines += [f"- {code(w.code)} on {code(w.target)}, {code(w.image)}: "
                  f"{' '.join(w.message.split())}" for w in plan.warnings]
    if report.notes:
        lines += ["", "**Notes**", ""] + [f"- {' '.join(n.split())}" for n in report.notes]
    if report.entries is not None and report.file_changed:
        rows = ["| | entry | target | change |", "| --- | --- | --- | --- |"]
        rows += ["| " + " | ".join(cell(c) for c in (
            code(_MARKS[e.kind]), code(e.label()), code(e.target), _entry_cells(e))) + " |"
                 for e in report.entries]
        rows += ["| " + " | ".join(cell(c) for c in (
            code("~"), code(f.name), "", code(_field_text(f, added=False)))) + " |"
                 for f in report.settings]
        lines += ["", *_details(f"Changes to {_hcode(report.file_name)}: "
                                f"{html.escape(file_phrase(report))}", rows,
                                open_=len(rows) <= 12)]
    if report.locks:
        rows = ["| | entry | target | from | to |", "| --- | --- | --- | --- | --- |"]
        for c in report.locks:
            mark = "+" if c.before is None else "-" if c.after is None else "~"
            rows.append("| " + " | ".join(cell(x) for x in (
                code(mark), code(f"{c.key.source} ({c.key.type}, {c.key.architecture})"),
                code(c.key.target), code(_build(c.before)), code(_build(c.after)))) + " |")
        lines += ["", *_details(f"Changes to {_hcode(report.lock_name)}: "
                                f"{html.escape(lock_phrase(report))}", rows,
                                open_=len(rows) <= 12)]
    lines += ["", f"### Plan of {code(report.file_name)} ({report.head}) against the live "
              "stores"]
    targets = text.targets_of(plan)
    if not plan.changes:
        lines += ["", f"No changes. The image stores match {code(report.file_name)}."]
    for target in targets:
        project = text.project_of(plan, target)
        changes = plan.for_target(target)
        left = [u for u in plan.untouched if u.target == target]
        heading = f"#### Target {code(target)}" + (f" (project {code(project)})"
                                                    if project else "")
        lines += ["", heading]
        if changes:
            lines += ["", "| action | image / alias | fingerprint | reason |",
                      "| --- | --- | --- | --- |"]
            lines += [change_row(c) for c in changes]
        else:
            lines += ["", "No changes."]
        if left:
            lines += ["", *_details(
                f"Left alone: {plural(len(left), 'image')} not managed by this file",
                [f"- {text.untouched_text(u)}" for u in left])]
    if plan.notes:
        lines += ["", *_details("Notes (could not be checked)",
                                [f"- {' '.join(n.split())}" for n in plan.notes])]
    body = "\n".join(lines) + "\n"
    return fit(body, budget, what="GitHub's 65,535-character comment limit",
               hint="The job log has the full output (`incus-images diff` in text).")
