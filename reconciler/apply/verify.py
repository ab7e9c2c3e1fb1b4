"""Check, on one observation after a target's changes, that each change really landed.

Invariant: a daemon that reported success without doing the work is an error
(:class:`~reconciler.errors.ApplyError` naming every change that did not land).
Pure: the observation is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from reconciler.errors import ApplyError
from reconciler.model.changes import (
    AliasCreate,
    AliasDelete,
    AliasMove,
    ImageAdopt,
    ImageDelete,
    ImageDownload,
    TypedChange,
)
from reconciler.model.observed import ObservedAlias, TargetState


def verify(target: str, changes: Sequence[TypedChange], state: TargetState) -> None:
    """Raise when ``state`` shows a change of ``changes`` that did not land."""
    present = {img.fingerprint for img in state.images}
    aliases = state.alias_targets()
    problems = [p for c in changes if (p := problem(c, present, aliases))]
    if problems:
        raise ApplyError(f"target {target!r}: the daemon reported success but "
                         + "; ".join(problems))


def problem(c: TypedChange, present: set[str], aliases: Mapping[str, ObservedAlias]) -> str:
    """What ``state`` says is wrong with change ``c`` ("": it landed, or is not checked)."""
    match c:
        case ImageDownload() | ImageAdopt() if c.fingerprint not in present:
            return f"image {c.fingerprint} is not in the store"
        case ImageDelete() if c.fingerprint in present:
            return f"image {c.fingerprint} is still in the store"
        case AliasCreate() | AliasMove():
            held = aliases.get(c.alias)
            if held is None or held.target != c.to:
                return f"alias {c.alias!r} does not point to {c.to}"
        case AliasDelete() if c.alias in aliases:
            return f"alias {c.alias!r} still exists"
    return ""
