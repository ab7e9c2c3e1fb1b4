"""``incus-images status`` as text, JSON, YAML and CSV.  Pure: a function of the report alone.

JSON is the contract's document; YAML is the same document (:mod:`reconciler.render.yamltext`).
CSV is one row per image after a header row, columns in :data:`CSV_COLUMNS` order
(the JSON keys, with the target's name and project first), quoted as RFC 4180 says
and as ``incus image list --format csv`` does (Go's ``encoding/csv``: a field is
quoted when it holds a comma, a double quote, a CR or LF, or starts with a space;
lines end with LF).  Values as in the JSON: full fingerprints, ``true``/``false``,
RFC 3339 times, sizes in bytes, null as an empty field.  ``aliases`` holds the
image's aliases sorted and joined with newlines, as incus's ALIASES column does
(an alias name has no whitespace but may hold a comma), so a field with several
aliases is quoted.  ``provenance`` is JSON and YAML only.

Text layout, one block per target (name order), one row per image in the
report's order (this owner's first)::

    Target local (project default): 2 images
      FINGERPRINT   OWNER                    SOURCE         ALIASES  AUTO  SIZE    ...  UPDATE
      4f3a2b1c9d8e  incus-images (this file) test:tiny/1.0  tiny     yes   1.2 kB  ...  no
        provenance: https://git.example/repo @ 0123456789ab images.yaml
      0123456789ab  nobody (cached)          -              -        no    1.2 kB  ...  unknown

(``...`` stands for the ``EXPIRES`` and ``LAST USED`` columns.)
``UPDATE`` is ``yes`` (another build is wanted or waits upstream), ``no``, or
``unknown`` (``--offline``, no source).  A clustered target's header is followed by
``members: m1 (Online), m2 (Offline, unhealthy)`` and one ``! ... [cluster.member_offline]``
line per unhealthy member.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from reconciler.core.cluster import MEMBER_OFFLINE
from reconciler.model.fingerprint import short_fingerprint, short_hex
from reconciler.model.status import ImageStatus, StatusReport, TargetStatus
from reconciler.model.times import minutes_as_given
from reconciler.render import yamltext
from reconciler.render.units import human_bytes, plural

_COLUMNS = ("FINGERPRINT", "OWNER", "SOURCE", "ALIASES", "AUTO", "SIZE", "EXPIRES",
            "LAST USED", "UPDATE")


def render_json(report: StatusReport) -> str:
    """The contract's status JSON, one document, newline-terminated."""
    return json.dumps(report.to_json_dict(), indent=2) + "\n"


def render_yaml(report: StatusReport) -> str:
    """The JSON document as YAML (same keys, same values), newline-terminated."""
    return yamltext.dump(report.to_json_dict())


CSV_COLUMNS = ("target", "project", "fingerprint", "managed", "owner", "cached", "aliases",
               "source", "auto_update", "expires_at", "last_used_at", "size",
               "update_available")
"""The CSV header row, in column order (a documented interface: only append to it)."""


def csv_field(value: Any) -> str:
    """One CSV field: JSON scalars as the JSON shows them (null empty), quoted when needed."""
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, list):
        text = "\n".join(sorted(str(v) for v in value))
    else:
        text = str(value)
    if _needs_quotes(text):
        return '"' + text.replace('"', '""') + '"'
    return text


def _needs_quotes(text: str) -> bool:
    """Go's ``encoding/csv`` rule (what incus uses)."""
    if text == "":
        return False
    if text == "\\." or any(c in text for c in ',"\r\n'):
        return True
    return text[0].isspace()


def render_csv(report: StatusReport) -> str:
    """A header row, then one row per image of every target, LF line ends."""
    rows = [",".join(CSV_COLUMNS)]
    for name, target in report.to_json_dict()["targets"].items():
        for img in target["images"]:
            values = {"target": name, "project": target["project"], **img}
            rows.append(",".join(csv_field(values[c]) for c in CSV_COLUMNS))
    return "\n".join(rows) + "\n"


def _when(value: datetime | None) -> str:
    return minutes_as_given(value) if value else "-"


def _owner(img: ImageStatus) -> str:
    who = img.owner or "nobody"
    tags = [t for t, on in (("this file", img.managed), ("cached", img.cached)) if on]
    return f"{who} ({', '.join(tags)})" if tags else who


def _update(img: ImageStatus) -> str:
    if img.update_available is None:
        return "unknown"
    return "yes" if img.update_available else "no"


def row(img: ImageStatus) -> tuple[str, ...]:
    return (short_fingerprint(img.fingerprint), _owner(img), img.source or "-",
            ", ".join(img.aliases) or "-", "yes" if img.auto_update else "no",
            human_bytes(img.size), _when(img.expires_at), _when(img.last_used_at), _update(img))


def _provenance(img: ImageStatus) -> str | None:
    p = img.provenance
    if p is None:
        return None
    parts = [p.repository or "?"]
    if p.commit:
        parts.append("@ " + short_hex(p.commit) + (" (uncommitted changes)" if p.dirty else ""))
    if p.path:
        parts.append(p.path)
    return "provenance: " + " ".join(parts)


def _where(member: str) -> str:
    return f"member {member}" if member else "the daemon"


def _broken(target: TargetStatus, img: ImageStatus | None) -> list[str]:
    """``broken copy on member m2: <the daemon's words>`` per broken copy of ``img``."""
    if img is None or not target.broken_copies:
        return []
    return [f"broken copy on {_where(b.member)}: {b.detail or 'unreadable'}"
            for b in target.broken_copies if b.fingerprint == img.fingerprint]


def _verified(target: TargetStatus) -> list[str]:
    """Under ``--verify``: how many broken copies, and the members not checked."""
    if target.broken_copies is None:
        return []
    broken = target.broken_copies
    lines = [f"  --verify: {plural(len(broken), 'broken copy', 'broken copies')}"
             if broken else "  --verify: every copy checked is readable"]
    lines += [f"  --verify could not check {_where(m)}: {why}"
              for m, why in sorted((target.unchecked_members or {}).items())]
    return lines
def member_lines(target: TargetStatus) -> list[str]:
    """A clustered target's members (none for a standalone daemon): one line naming
    them all, then one warning line per unhealthy member."""
    if target.members is None:
        return []
    listed = ", ".join(f"{m.name} ({m.status}{'' if m.healthy else ', unhealthy'})"
                       for m in target.members)
    return [f"  members: {listed or '-'}"] + [
        f"  ! {m.problem} [{MEMBER_OFFLINE}]" for m in target.members if not m.healthy]


def render_text(report: StatusReport) -> str:
    """Every target's images as aligned columns, newline-terminated."""
    blocks: list[str] = []
    for name, target in report.targets.items():
        head = f"Target {name} (project {target.project}): {plural(len(target.images), 'image')}"
        if not target.images:
            blocks.append("\n".join([head, *member_lines(target), *_verified(target)]))
            continue
        rows = [_COLUMNS, *(row(i) for i in target.images)]
        widths = [max(len(r[c]) for r in rows) for c in range(len(_COLUMNS))]
        lines = [head, *member_lines(target)]
        for r, img in zip(rows, [None, *target.images], strict=True):
            lines.append("  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True))
                         .rstrip())
            extra = _provenance(img) if img is not None else None
            if extra:
                lines.append("    " + extra)
            lines += ["    " + b for b in _broken(target, img)]
        lines += _verified(target)
        blocks.append("\n".join(lines))
    if not blocks:
        blocks.append("No targets.")
    return "\n\n".join(blocks) + "\n"


RENDERERS = {"text": render_text, "json": render_json, "yaml": render_yaml, "csv": render_csv}
"""``status --format`` -> its renderer."""
