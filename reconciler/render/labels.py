"""One-line labels for a change and its outcome (pure text).

Shared by the progress reporters (``render.progress``, which write to a stream
while ``apply`` runs) and the apply result (``render.text``), so the result's text
never depends on the progress machinery (threads, terminal size).
"""

from __future__ import annotations

from reconciler.model.fingerprint import short_fingerprint
from reconciler.model.plan import Change
from reconciler.model.result import Outcome, Status


def change_label(change: Change) -> str:
    """``image.download images:debian/12 4f3a2b1c9d8e``: action, subject, short fingerprint."""
    subject = change.alias or change.source or ", ".join(change.fields or {})
    fp = change.to if change.action.value.startswith("alias.") else change.fingerprint
    fp = fp or change.fingerprint or change.from_
    parts = [change.action.value, subject, short_fingerprint(fp, missing="")]
    return " ".join(p for p in parts if p)


def outcome_label(outcome: Outcome) -> str:
    """``done``, ``done (via upload)``, ``FAILED: message``, ``skipped``."""
    if outcome.status is Status.DONE:
        return "done" + (f" (via {outcome.via})" if outcome.via else "")
    if outcome.status is Status.FAILED:
        return "FAILED" + (f": {outcome.message}" if outcome.message else "")
    return "skipped" + (f" ({outcome.message})" if outcome.message else "")
