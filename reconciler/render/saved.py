"""The line ``show`` prints above a saved plan: where it came from."""

from __future__ import annotations

from reconciler.core.builds import iso
from reconciler.model.plan import Plan


def describe(plan: Plan) -> str:
    """One line saying where a saved plan came from (no trailing newline)."""
    parts = [f"Saved plan of owner {plan.owner!r}"]
    if plan.created_at is not None:
        parts.append(f"made {iso(plan.created_at)}")
    prov = plan.provenance
    if prov is not None:
        dirty = ", with uncommitted changes" if prov.dirty else ""
        parts.append(f"from {prov.path} at commit {prov.commit[:12]}{dirty} of {prov.repository}")
    elif plan.desired_digest:
        parts.append(f"from a file with sha256 {plan.desired_digest[:12]}")
    return ", ".join(parts) + "."
