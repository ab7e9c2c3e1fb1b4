"""A saved plan's bytes: the plan's contract JSON, and the digest that seals it (pure).

Invariants:

* :func:`document` is exactly ``Plan.to_json_dict()`` (keys in model order,
  absent optionals left out, ``from`` spelled as such) with two-space indentation
  and a trailing newline: ``plan --format json`` prints it and ``plan --out``
  saves it, so both are the same document.
* ``digest`` is the SHA-256 of the canonical JSON (sorted keys, no spaces, UTF-8)
  of the document without ``digest``.  It detects truncation and edits, not
  forgery: anyone can recompute it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from reconciler.model.plan import Plan


def document(plan: Plan) -> str:
    """The plan's contract JSON, one document, newline-terminated."""
    return json.dumps(plan.to_json_dict(), indent=2, sort_keys=False) + "\n"


def canonical(data: Mapping[str, Any]) -> bytes:
    """The canonical JSON bytes of ``data`` without its ``digest`` key."""
    body = {k: v for k, v in data.items() if k != "digest"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def digest_of(data: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of :func:`canonical` ``data``."""
    return hashlib.sha256(canonical(data)).hexdigest()


def seal(plan: Plan) -> Plan:
    """``plan`` with ``digest`` set over everything else (idempotent)."""
    return plan.model_copy(update={"digest": digest_of(plan.to_json_dict())})
