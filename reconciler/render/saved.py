"""The line ``show`` prints above a saved plan: where it came from."""

from __future__ import annotations

from reconciler.model.fingerprint import short_hex
from reconciler.model.plan import Plan
from reconciler.model.times import rfc3339_seconds


def describe(plan: Plan) -> str:
    """One line saying where a saved plan came from (no trailing newline)."""
    parts = [f"Saved plan of owner {plan.owner!r}"]
    if plan.created_at is not None:
        parts.append(f"made {rfc3339_seconds(plan.created_at)}")
    prov = plan.provenance
    if prov is not None:
        dirty = ", with uncommitted changes" if prov.dirty else ""
        parts.append(f"from {prov.path} at commit {short_hex(prov.commit)}{dirty} "
                     f"of {prov.repository}")
    elif plan.desired_digest:
        parts.append(f"from a file with sha256 {short_hex(plan.desired_digest)}")
    return ", ".join(parts) + "."
