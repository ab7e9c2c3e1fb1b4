"""What ``incus-images lock`` prints: one line per lock that moved, then the file's fate."""

from __future__ import annotations

from reconciler.core.lock import LockOutcome
from reconciler.model.fingerprint import short_fingerprint
from reconciler.model.lock import LockedBuild


def render_outcome(outcome: LockOutcome) -> str:
    """One line per change (``+``, ``-``, ``~``), then whether the file was written."""
    lines = []
    for c in outcome.changes:
        if c.before is None and c.after is not None:
            lines.append(f"  + {c.key.label()}: {build(c.after)}")
        elif c.after is None and c.before is not None:
            lines.append(f"  - {c.key.label()}: no longer declared")
        elif c.before is not None and c.after is not None:
            lines.append(f"  ~ {c.key.label()}: {build(c.before)} -> {build(c.after)}")
    n = len(outcome.lock.images)
    count = f"{n} entr{'y' if n == 1 else 'ies'}"
    if outcome.written:
        lines.append(f"Wrote {outcome.path} ({count}).")
    else:
        lines.append(f"{outcome.path} is up to date ({count}).")
    return "\n".join(lines) + "\n"


def build(b: LockedBuild) -> str:
    """``4f3a2b1c9d8e (20240101_0000)``: short fingerprint and version, if any."""
    return short_fingerprint(b.fingerprint) + (f" ({b.version})" if b.version else "")
