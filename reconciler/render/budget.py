"""Fit rendered markdown into a size budget (GitHub comments, step summaries).

GitHub rejects a comment over 65,535 characters and aborts a step summary over
1 MiB.  :func:`fit` shortens any markdown these renderers produce so that it
stays within a byte budget (UTF-8 bytes, which is never less than characters),
and says what it cut.  Invariants:

* Text within the budget is returned unchanged.
* Only list items and table body rows are dropped, never headings, summaries,
  table headers or ``<details>`` tags; tables keep their column count, and every
  run that lost rows gets one "... N more not shown" row or item in their place.
* Rows are shared fairly: runs smaller than an equal share keep everything, the
  others are cut to the share, earlier rows first.
* The result always ends with a note naming how much was cut and ``hint``; if
  the fixed parts alone exceed the budget, the text is cut at a line boundary,
  with every open ``<details>`` closed.
"""

from __future__ import annotations

from dataclasses import dataclass

GITHUB_COMMENT_LIMIT = 65_535
"""GitHub's maximum comment body, in characters."""
COMMENT_BUDGET = 60_000
"""What a PR comment may use: below the limit, leaving room for an action's own header."""
STEP_SUMMARY_BUDGET = 1_000_000
"""GitHub aborts a ``$GITHUB_STEP_SUMMARY`` upload over 1 MiB per step."""

_MAX_LINE = 4_000
_NOTE_RESERVE = 600
_MARKER_RESERVE = 120


def size(text: str) -> int:
    return len(text.encode("utf-8"))


@dataclass
class _Run:
    """A run of droppable lines: table body rows (``columns`` > 0) or list items."""

    start: int
    lines: list[str]
    columns: int = 0

    @property
    def cost(self) -> int:
        return sum(size(line) + 1 for line in self.lines)

    def marker(self, dropped: int) -> str:
        text = f"… {dropped} more not shown"
        if self.columns:
            return "| " + " | ".join([text] + [""] * (self.columns - 1)) + " |"
        return f"- {text}"


def _runs(lines: list[str]) -> list[_Run]:
    runs: list[_Run] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("| ---"):
            columns = len(line.strip().strip("|").split("|"))
            j = i + 2
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            if j > i + 2:
                runs.append(_Run(i + 2, lines[i + 2:j], columns))
            i = j
        elif line.startswith("- "):
            j = i
            while j < len(lines) and lines[j].startswith("- "):
                j += 1
            runs.append(_Run(i, lines[i:j]))
            i = j
        else:
            i += 1
    return runs


def _shorten(line: str) -> str:
    """One over-long line cut to ``_MAX_LINE`` characters, keeping a table row a row."""
    if len(line) <= _MAX_LINE:
        return line
    cut = line[: _MAX_LINE - 8]
    if cut.count("`") % 2:
        cut += "`"
    return cut + " …" + (" |" if line.startswith("|") else "")


def _share(runs: list[_Run], budget: int) -> dict[int, int]:
    """Max-min fair allocation of ``budget`` bytes: rows kept per run (by index)."""
    keep: dict[int, int] = {}
    pending = list(range(len(runs)))
    remaining = budget
    while pending:
        share = remaining // len(pending)
        small = [i for i in pending if runs[i].cost <= share]
        if not small:
            break
        for i in small:
            keep[i] = len(runs[i].lines)
            remaining -= runs[i].cost
            pending.remove(i)
    for i in pending:
        share = remaining // len(pending)
        used = n = 0
        for line in runs[i].lines:
            if used + size(line) + 1 > share:
                break
            used += size(line) + 1
            n += 1
        keep[i] = n
    return keep


def fit(text: str, budget: int, *, what: str, hint: str) -> str:
    """``text`` within ``budget`` UTF-8 bytes (see module invariants).

    ``what`` names the limit in the note ("GitHub's 65,535-character comment
    limit"); ``hint`` says where the full output is.
    """
    if size(text) <= budget:
        return text
    lines = [_shorten(line) for line in text.rstrip("\n").split("\n")]
    runs = _runs(lines)
    fixed = sum(size(line) + 1 for line in lines) - sum(r.cost for r in runs)
    room = budget - fixed - _NOTE_RESERVE - _MARKER_RESERVE * len(runs)
    keep = _share(runs, max(room, 0))
    by_start = {r.start: (i, r) for i, r in enumerate(runs)}
    out: list[str] = []
    total = sum(len(r.lines) for r in runs)
    dropped = 0
    i = 0
    while i < len(lines):
        if i in by_start:
            index, run = by_start[i]
            n = keep[index]
            out += run.lines[:n]
            if n < len(run.lines):
                out.append(run.marker(len(run.lines) - n))
                dropped += len(run.lines) - n
            i += len(run.lines)
            continue
        out.append(lines[i])
        i += 1
    note = (f"> **Note:** cut to fit {what}: {dropped} of {total} rows and list items are "
            f"not shown. {hint}")
    result = "\n".join(out)
    if size(result) + size(note) + 2 > budget:
        result = _hard_cut(out, budget - size(note) - 64)
        note = f"> **Note:** cut to fit {what}; the rest is not shown. {hint}"
    return result + "\n\n" + note + "\n"


def _hard_cut(lines: list[str], budget: int) -> str:
    kept: list[str] = []
    used = 0
    for line in lines:
        if used + size(line) + 1 > budget:
            break
        kept.append(line)
        used += size(line) + 1
    opened = sum(line.count("<details") for line in kept)
    closed = sum(line.count("</details>") for line in kept)
    kept += ["", "</details>"] * max(opened - closed, 0)
    return "\n".join(kept)
