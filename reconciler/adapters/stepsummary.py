"""Append markdown to GitHub Actions' job summary (``$GITHUB_STEP_SUMMARY``).

Invariants: nothing happens unless the variable names a file; the file is only
ever appended to (earlier steps' and commands' output is kept); what is appended
is cut with :func:`reconciler.render.budget.fit` so that the file stays under
GitHub's 1 MiB per-step limit; a summary that cannot be written never fails the
command (the caller gets the reason, to print as a note).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from reconciler.render.budget import STEP_SUMMARY_BUDGET, fit

VARIABLE = "GITHUB_STEP_SUMMARY"
_MIN_BUDGET = 2_000


def append(markdown: str, environ: Mapping[str, str]) -> str | None:
    """Append ``markdown`` to the summary file, if any; the error text if it failed."""
    path = environ.get(VARIABLE)
    if not path:
        return None
    try:
        used = os.path.getsize(path)
    except OSError:
        used = 0
    budget = max(STEP_SUMMARY_BUDGET - used, _MIN_BUDGET)
    text = fit(markdown, budget, what="GitHub's 1 MiB step summary limit",
               hint="The job log has the full output.")
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(("\n" if used else "") + text)
    except OSError as exc:
        return f"cannot append to ${VARIABLE} ({path}): {exc.strerror or exc}"
    return None
