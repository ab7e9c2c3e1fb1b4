"""How a change and its outcome are named (pure text): the one place that knows it.

Each action's marker (:data:`MARKERS`), what a change is about (:func:`name_of`),
the fingerprints it concerns (:func:`fingerprints`) and its one-line label
(:func:`change_label`) live here; the plan renderers (``render.text``,
``render.markdown``), the progress reporters (``render.progress``, which write to
a stream while ``apply`` runs) and the apply result use them, so the result's text
never depends on the progress machinery (threads, terminal size).  Every
:class:`Action` of the contract has a marker, including ``image.refresh``, which
the planner never produces (apply refuses it as not supported); it is rendered
like any other image change.
"""

from __future__ import annotations

from reconciler.model.fingerprint import short_fingerprint
from reconciler.model.plan import Action, Change
from reconciler.model.result import Outcome, Status

MARKERS: dict[Action, str] = {
    Action.SERVER_UPDATE: "~",
    Action.IMAGE_DOWNLOAD: "+",
    Action.IMAGE_ADOPT: "+",
    Action.IMAGE_REFRESH: "~",
    Action.IMAGE_UPDATE: "~",
    Action.ALIAS_CREATE: "+",
    Action.ALIAS_MOVE: "~",
    Action.ALIAS_UPDATE: "~",
    Action.ALIAS_DELETE: "-",
    Action.IMAGE_DELETE: "-",
}
"""``+`` brings something in, ``~`` changes it in place, ``-`` removes it."""

ACTION_WIDTH = max(len(a.value) for a in Action)
ALIAS_ACTIONS = (Action.ALIAS_CREATE, Action.ALIAS_MOVE, Action.ALIAS_UPDATE,
                  Action.ALIAS_DELETE)


def name_of(change: Change) -> str:
    """What a change is about: the alias, the image's source, or the server keys."""
    if change.action is Action.SERVER_UPDATE:
        return ", ".join(change.fields or {}) or "server config"
    if change.action in ALIAS_ACTIONS:
        return change.alias or "?"
    return change.source or "(no recorded source)"


def fingerprints(change: Change) -> tuple[str | None, str | None]:
    """The (before, after) fingerprints a change concerns; either may be None."""
    a = change.action
    if a is Action.ALIAS_CREATE:
        return None, change.to or change.fingerprint
    if a is Action.ALIAS_MOVE:
        return change.from_, change.to
    if a is Action.ALIAS_UPDATE:
        return None, change.fingerprint or change.to
    if a is Action.ALIAS_DELETE:
        return change.from_ or change.fingerprint, None
    if a is Action.SERVER_UPDATE:
        return None, None
    return None, change.fingerprint


def change_label(change: Change) -> str:
    """``image.download images:debian/12 4f3a2b1c9d8e``: action, subject, short fingerprint."""
    subject = change.alias or change.source or ", ".join(change.fields or {})
    fp = change.to if change.action in ALIAS_ACTIONS else change.fingerprint
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
