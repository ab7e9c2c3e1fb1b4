"""What changed in the desired-state file and its lock file between two revisions (pure).

Invariants:

* Entries are compared per (target, source, type, architecture): the identity the
  planner uses, with a missing architecture meaning the target's host's.  Each
  change lists the fields that differ; key material is never compared by value
  or shown (only "changed").
* :func:`diff_entries`, :func:`diff_settings` and :func:`diff_locks` are pure;
  reading the revisions is ``reconciler.adapters.git`` and the flow that joins
  them is ``reconciler.pipeline.run_diff``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from reconciler.core.lock import LockChange, changes
from reconciler.model.config import Config, EntrySpec
from reconciler.model.keys import EntryKey
from reconciler.model.lock import LockFile
from reconciler.model.plan import Plan
from reconciler.redact import redact_url

WORKING_TREE = "working tree"


_ENTRY_FIELDS = ("fingerprint", "aliases", "auto_update", "public", "profiles", "properties",
                 "expires_at", "expires_after_days")


@dataclass(frozen=True)
class FieldDiff:
    """One field that differs; ``before``/``after`` are display values (None: absent)."""

    name: str
    before: Any
    after: Any


@dataclass(frozen=True)
class EntryDiff:
    kind: Literal["added", "removed", "changed"]
    target: str
    source: str
    type: str
    architecture: str | None
    fields: tuple[FieldDiff, ...] = ()

    def label(self) -> str:
        """``test:tiny/1.0 (container, host architecture)``."""
        return f"{self.source} ({self.type}, {self.architecture or 'host architecture'})"


@dataclass
class DiffReport:
    """Everything ``diff`` shows.  ``entries`` is None when the base could not be read."""

    file_name: str
    lock_name: str
    base: str
    head: str
    entries: list[EntryDiff] | None
    settings: list[FieldDiff]
    locks: list[LockChange]
    plan: Plan
    notes: list[str] = field(default_factory=list)

    @property
    def file_changed(self) -> bool:
        return bool(self.entries or self.settings)


def _entry_fields(e: EntrySpec) -> dict[str, Any]:
    return {
        "fingerprint": e.fingerprint,
        "aliases": [a.name + (f" ({a.description})" if a.description else "")
                    for a in e.aliases],
        "auto_update": e.auto_update,
        "public": e.public,
        "profiles": list(e.profiles),
        "properties": dict(sorted(e.properties.items())),
        "expires_at": e.expires_at,
        "expires_after": f"{e.expires_after_days}d" if e.expires_after_days else None,
    }


def _entries(config: Config | None) -> dict[EntryKey, EntrySpec]:
    out: dict[EntryKey, EntrySpec] = {}
    for e in config.entries if config else ():
        out.setdefault(EntryKey(e.target, e.source, e.type, e.architecture or ""), e)
    return out


def diff_entries(base: Config | None, head: Config | None) -> list[EntryDiff]:
    """Entries added, removed and changed (field by field), sorted by source then target."""
    before, after = _entries(base), _entries(head)
    out: list[EntryDiff] = []
    for key in sorted(set(before) | set(after), key=EntryKey.sort_key):
        target, source, type_ = key.target, key.source, key.type
        arch = key.architecture or None  # "" in the key: the host's, shown as none
        b, a = before.get(key), after.get(key)
        if b is None and a is not None:
            shown = tuple(FieldDiff(n, None, v) for n, v in _entry_fields(a).items()
                          if v not in (None, [], {}, False) or n == "auto_update")
            out.append(EntryDiff("added", target, source, type_, arch, shown))
        elif a is None and b is not None:
            out.append(EntryDiff("removed", target, source, type_, arch))
        elif a is not None and b is not None:
            fb, fa = _entry_fields(b), _entry_fields(a)
            diffs = tuple(FieldDiff(n, fb[n], fa[n]) for n in fa if fb[n] != fa[n])
            if diffs:
                out.append(EntryDiff("changed", target, source, type_, arch, diffs))
    return out


def _settings(config: Config | None) -> dict[str, Any]:
    if config is None:
        return {}
    out: dict[str, Any] = {"owner": config.owner}
    out.update({f"server.{k}": v for k, v in config.server.items()})
    out["policy.prune"] = config.policy.prune
    out["policy.alias_conflicts"] = config.policy.alias_conflicts
    days = config.policy.cached.delete_unused_after_days
    out["policy.cached"] = f"delete_unused_after: {days}d" if days else "keep"
    for name, r in config.remotes.items():
        out[f"remotes.{name}.url"] = redact_url(r.url)
        out[f"remotes.{name}.protocol"] = r.protocol
        out[f"remotes.{name}.certificate"] = _secret(r.certificate)
    for name, t in config.targets.items():
        out[f"targets.{name}.url"] = redact_url(t.url)
        out[f"targets.{name}.project"] = t.project
        creds = (t.client_cert, t.client_key, t.server_cert)
        out[f"targets.{name}.credentials"] = _secret("\0".join(c or "" for c in creds))
    return out


class _Secret:
    """Stands for key material: equal when the material is, printed without it."""

    def __init__(self, value: str) -> None:
        self._value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "(set)"

    __str__ = __repr__


def _secret(value: str | None) -> _Secret | None:
    return _Secret(value) if value and value.strip("\0") else None


def diff_settings(base: Config | None, head: Config | None) -> list[FieldDiff]:
    """Changes outside the image list (owner, server, policy, remotes, targets), sorted.

    Key material (certificates, client keys) shows only as ``changed``.
    """
    if base is None:
        return []
    b, a = _settings(base), _settings(head)
    out = []
    for key in sorted(set(b) | set(a)):
        if b.get(key) != a.get(key):
            before, after = b.get(key), a.get(key)
            if isinstance(before, _Secret) or isinstance(after, _Secret):
                before = "(set)" if before is not None else None
                after = "(changed)" if before is not None and after is not None else (
                    "(set)" if after is not None else None)
            out.append(FieldDiff(key, before, after))
    return out


def diff_locks(base: LockFile | None, head: LockFile | None) -> list[LockChange]:
    """Lock entries added, removed and moved to another build."""
    return changes(base.locks() if base else {}, head.locks() if head else {})
