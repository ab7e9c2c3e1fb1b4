"""The plan (and the apply result) as JSON: the contract's machine-readable form.

``render_plan`` is exactly ``Plan.to_json_dict()`` (keys in model order, absent
optionals left out, ``from`` spelled as such) with two-space indentation and a
trailing newline, so it round-trips through ``Plan.model_validate``.
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.core.seal import document
from reconciler.model.plan import FORMAT_VERSION, Plan
from reconciler.model.result import ApplyResult


def render_plan(plan: Plan) -> str:
    """The plan's contract JSON, one document, newline-terminated (a saved plan's text)."""
    return document(plan)


def result_dict(result: ApplyResult) -> dict[str, Any]:
    """``{"format_version", "ok", "outcomes": [{"status", "change", ...}]}``, and
    ``failed_targets`` (target -> why) when some targets could not be observed.

    Each outcome embeds its change in the plan's JSON shape.
    """
    out: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "ok": result.ok,
        "outcomes": [
            o.model_dump(mode="json", by_alias=True, exclude_none=True) for o in result.outcomes
        ],
    }
    if result.failed_targets:
        out["failed_targets"] = dict(result.failed_targets)
    return out


def render_result(result: ApplyResult) -> str:
    """The apply result as one JSON document, newline-terminated."""
    return json.dumps(result_dict(result), indent=2, sort_keys=False) + "\n"
