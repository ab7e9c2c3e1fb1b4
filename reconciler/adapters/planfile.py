"""Saved plan files: write one, and read one back only if it is whole, unedited and valid.

A saved plan is the plan's contract JSON (``plan --format json`` prints the same
document, :func:`reconciler.core.seal.document`) with four more fields:
``desired_digest``, ``provenance``, ``observed`` and ``digest`` (see
:class:`~reconciler.model.plan.Plan`).

Invariants:

* :func:`load` never lets a bad file through and never raises anything but
  :class:`PlanFileError`: unreadable, larger than 16 MiB, not JSON, nested more
  than 64 levels deep, not an object, another format version, no or a wrong
  digest, not matching the plan schema (generated from the model at run time,
  not read from disk), or a change that lacks a field its action requires
  (:mod:`reconciler.model.changes`).  The digest is checked on the bytes as
  read, before the document becomes a :class:`Plan`.
* :func:`save` writes atomically, readable by its owner only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from reconciler.adapters.files import write_atomic
from reconciler.adapters.schemas import packaged
from reconciler.core.seal import digest_of, document, seal
from reconciler.errors import PlanError, PlanFileError
from reconciler.model.changes import check_fits
from reconciler.model.plan import FORMAT_VERSION, Plan

if TYPE_CHECKING:
    import jsonschema

_MESSAGE_LIMIT = 200
MAX_PLAN_BYTES = 16 << 20
"""A saved plan larger than this (16 MiB) is refused unread: no real plan comes near it."""
MAX_PLAN_DEPTH = 64
"""JSON nesting deeper than this is refused: a real plan is about 8 levels deep."""
PLAN_FILE_MODE = 0o600
"""A saved plan names stores and what they hold: only its owner reads it (whatever the umask)."""


def save(plan: Plan, path: Path) -> Plan:
    """Seal ``plan`` and write it to ``path`` atomically; return the sealed plan."""
    sealed = seal(plan)
    try:
        write_atomic(path, document(sealed).encode("utf-8"), mode=PLAN_FILE_MODE)
    except OSError as exc:
        raise PlanFileError(f"cannot write the plan to {path}: {exc.strerror or exc}") from exc
    return sealed


@cache
def _validator() -> jsonschema.protocols.Validator:
    """The saved plan's JSON Schema validator (jsonschema is imported here: only reading a
    saved plan needs it, and it costs start-up time)."""
    import jsonschema

    schema = json.loads(packaged("plan"))  # the shipped copy: equal to the generated one
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def _where(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the document"


def _clip(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _MESSAGE_LIMIT else line[: _MESSAGE_LIMIT - 3] + "..."


def parse(text: bytes, name: str) -> Plan:
    """The plan in ``text`` (a saved plan file's bytes); ``name`` words the errors."""
    data = _json_object(text, name)
    _check_sealed(data, name)
    validator = _validator()
    from jsonschema.exceptions import best_match

    error = best_match(validator.iter_errors(data))
    if error is not None:
        raise PlanFileError(f"{name} is not a valid saved plan: {_where(error.absolute_path)}: "
                            f"{_clip(error.message)}")
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise PlanFileError(f"{name} is not a valid saved plan: {_where(first['loc'])}: "
                            f"{_clip(first['msg'])}") from exc
    for i, change in enumerate(plan.changes):
        try:
            check_fits(change)
        except PlanError as exc:
            raise PlanFileError(f"{name} is not a valid saved plan: changes[{i}]: "
                                f"{_clip(str(exc))}") from exc
    return plan


def _json_object(text: bytes, name: str) -> dict[str, Any]:
    """``text`` as a JSON object: at most ``MAX_PLAN_BYTES``, UTF-8, ``MAX_PLAN_DEPTH`` deep."""
    if len(text) > MAX_PLAN_BYTES:
        raise PlanFileError(f"{name} is not a saved plan: it is larger than "
                            f"{MAX_PLAN_BYTES >> 20} MiB")
    try:
        data = json.loads(text.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise PlanFileError(f"{name} is not a saved plan: it is not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise PlanFileError(f"{name} is not a saved plan: invalid JSON at line {exc.lineno} "
                            f"column {exc.colno} ({exc.msg}); was it truncated?") from exc
    except ValueError as exc:  # e.g. a number too long to convert
        raise PlanFileError(f"{name} is not a saved plan: {_clip(str(exc))}") from exc
    except RecursionError:
        data = _TOO_DEEP
    if data is _TOO_DEEP or _too_deep(data):
        raise PlanFileError(f"{name} is not a saved plan: its JSON is nested more than "
                            f"{MAX_PLAN_DEPTH} levels deep") from None
    if not isinstance(data, dict):
        raise PlanFileError(f"{name} is not a saved plan: expected a JSON object, "
                            f"found {type(data).__name__}")
    return data


def _check_sealed(data: dict[str, Any], name: str) -> None:
    """Refuse another format version, a missing digest, or one the content does not match."""
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        found = "none" if version is None else repr(version)
        raise PlanFileError(f"{name} is not a saved plan of format version {FORMAT_VERSION} "
                            f"(format_version: {_clip(found)})")
    recorded = data.get("digest")
    if not isinstance(recorded, str):
        raise PlanFileError(f"{name} has no digest: only a plan written by "
                            "`incus-images plan --out FILE` can be shown or applied")
    try:
        actual = digest_of(data)
    except ValueError as exc:  # NaN or Infinity: never written by this tool
        raise PlanFileError(f"{name} is not a saved plan: {_clip(str(exc))}") from exc
    if actual != recorded:
        raise PlanFileError(f"{name} has been edited since it was saved: its content does not "
                            "match its digest; make a new plan")


_TOO_DEEP = object()


def _too_deep(data: Any) -> bool:
    """Whether ``data`` nests lists and objects more than ``MAX_PLAN_DEPTH`` deep (no recursion)."""
    todo: list[tuple[Any, int]] = [(data, 1)]
    while todo:
        value, depth = todo.pop()
        children = (value.values() if isinstance(value, dict)
                    else value if isinstance(value, list) else ())
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > MAX_PLAN_DEPTH:
                    return True
                todo.append((child, depth + 1))
    return False


def load(path: Path) -> Plan:
    """Read and check a saved plan (see :func:`parse`); at most ``MAX_PLAN_BYTES`` are read."""
    try:
        with path.open("rb") as f:
            text = f.read(MAX_PLAN_BYTES + 1)
    except OSError as exc:
        raise PlanFileError(f"cannot read the plan {path}: {exc.strerror or exc}") from exc
    return parse(text, str(path))
