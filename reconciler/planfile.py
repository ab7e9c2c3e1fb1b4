"""Saved plans: seal, save, load, and check that they still hold.

A saved plan is the plan's contract JSON (``plan --format json`` prints the same
document) with four more fields: ``desired_digest``, ``provenance``, ``observed``
and ``digest`` (see :class:`~reconciler.model.plan.Plan`).

Invariants:

* ``digest`` is the SHA-256 of the canonical JSON (sorted keys, no spaces, UTF-8)
  of the document without ``digest``.  It detects truncation and edits, not
  forgery: anyone can recompute it.  It is checked on the bytes as read, before
  the document becomes a :class:`Plan`.
* :func:`load` never lets a bad file through and never raises anything but
  :class:`PlanFileError`: unreadable, larger than 16 MiB, not JSON, nested more
  than 64 levels deep, not an object, another format
  version, no or a wrong digest, or not matching the plan schema (generated from
  the model at run time, not read from disk).
* :func:`select` records exactly what the plan relies on; :func:`take` reads the
  same items from a later observation; :func:`differences` compares the two.
  Last-use times, other owners' and daemon-cached images, other projects and
  unrelated server config are never part of a snapshot, so they never make a plan
  stale.
* Nothing here reads key material: connection details come from the desired-state
  file when the plan is applied.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from pydantic import ValidationError

from reconciler.adapters.files import write_atomic
from reconciler.core.ownership import attribute
from reconciler.errors import PlanFileError, StalePlan
from reconciler.model.config import Config
from reconciler.model.fingerprint import short_fingerprint, short_hex
from reconciler.model.observed import Inventory, TargetState
from reconciler.model.plan import FORMAT_VERSION, Plan
from reconciler.model.snapshot import ImageFields, ObservedSnapshot
from reconciler.model.times import rfc3339_seconds
from reconciler.render import json as json_render

_MESSAGE_LIMIT = 200
MAX_PLAN_BYTES = 16 << 20
"""A saved plan larger than this (16 MiB) is refused unread: no real plan comes near it."""
MAX_PLAN_DEPTH = 64
"""JSON nesting deeper than this is refused: a real plan is about 8 levels deep."""
PLAN_FILE_MODE = 0o600
"""A saved plan names stores and what they hold: only its owner reads it (whatever the umask)."""


# -- digest -----------------------------------------------------------------------------

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


# -- save / load ------------------------------------------------------------------------

def save(plan: Plan, path: Path) -> Plan:
    """Seal ``plan`` and write it to ``path`` atomically; return the sealed plan."""
    sealed = seal(plan)
    text = json_render.render_plan(sealed)
    try:
        write_atomic(path, text.encode("utf-8"), mode=PLAN_FILE_MODE)
    except OSError as exc:
        raise PlanFileError(f"cannot write the plan to {path}: {exc.strerror or exc}") from exc
    return sealed


@cache
def _validator() -> jsonschema.protocols.Validator:
    from reconciler.schemas import plan_schema

    schema = plan_schema()
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
    error = jsonschema.exceptions.best_match(_validator().iter_errors(data))
    if error is not None:
        raise PlanFileError(f"{name} is not a valid saved plan: {_where(error.absolute_path)}: "
                            f"{_clip(error.message)}")
    try:
        return Plan.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise PlanFileError(f"{name} is not a valid saved plan: {_where(first['loc'])}: "
                            f"{_clip(first['msg'])}") from exc


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


# -- what a plan relies on --------------------------------------------------------------

def touched(plan: Plan) -> list[str]:
    """The targets the plan changes, in name order."""
    return sorted({c.target for c in plan.changes})


def select(state: TargetState, plan: Plan, config: Config) -> ObservedSnapshot:
    """What ``plan`` relies on in ``state`` (one of the targets it changes).

    Images: every one this owner manages plus every fingerprint a change names
    (``fingerprint`` or ``to``), except daemon-cached images nobody manages (the
    daemon prunes those on its own).  Aliases: every one the file declares for the
    target, every one a change names, every one this owner's inventory lists.
    """
    owner = plan.owner
    attrs = attribute(state)
    changes = plan.for_target(state.target)
    fps = {fp for fp, a in attrs.items() if a.owner == owner}
    fps |= {fp for c in changes for fp in (c.fingerprint, c.to) if fp}
    cached = {img.fingerprint for img in state.images
              if img.cached and attrs[img.fingerprint].owner is None}
    aliases = {a.name for e in config.entries_for(state.target) for a in e.aliases}
    aliases |= {c.alias for c in changes if c.alias}
    mine = state.inventories.get(owner)
    if mine is not None:
        aliases |= mine.aliases
    return take(state, owner, fps - cached, aliases)


def take(state: TargetState, owner: str, fingerprints: Iterable[str],
         aliases: Iterable[str]) -> ObservedSnapshot:
    """The snapshot of ``state`` for exactly these images and aliases."""
    images: dict[str, ImageFields | None] = {}
    for fp in sorted(set(fingerprints)):
        img = state.image(fp)
        images[fp] = ImageFields.of(img) if img is not None else None
    held = state.alias_targets()
    targets = {n: (held[n].target if n in held else None) for n in sorted(set(aliases))}
    inventory = state.inventories.get(owner) or Inventory(owner=owner,
                                                          project=state.effective_project)
    server = {k: v for k, v in sorted(state.server_config.items()) if k.startswith("images.")}
    return ObservedSnapshot(project=state.effective_project, images=images, aliases=targets,
                            inventory=inventory, server=server)


def differences(before: ObservedSnapshot, after: ObservedSnapshot) -> list[str]:
    """What moved between two snapshots of one target, one phrase each (empty: nothing)."""
    out: list[str] = []
    if before.project != after.project:
        out.append(f"its images now live in project {after.project!r} (was {before.project!r})")
    for fp, was in before.images.items():
        now = after.images.get(fp)
        if was is None and now is not None:
            out.append(f"image {short_fingerprint(fp)} has appeared")
        elif was is not None and now is None:
            out.append(f"image {short_fingerprint(fp)} is gone")
        elif was is not None and now is not None and was != now:
            fields = [name for name in ImageFields.model_fields
                      if getattr(was, name) != getattr(now, name)]
            out.append(f"image {short_fingerprint(fp)}: {', '.join(fields)} changed")
    for name, was_at in before.aliases.items():
        now_at = after.aliases.get(name)
        if was_at == now_at:
            continue
        if was_at is None:
            out.append(f"alias {name!r} was created (on {short_fingerprint(now_at)})")
        elif now_at is None:
            out.append(f"alias {name!r} was deleted (was on {short_fingerprint(was_at)})")
        else:
            out.append(f"alias {name!r} moved from {short_fingerprint(was_at)} "
                       f"to {short_fingerprint(now_at)}")
    if before.inventory != after.inventory:
        out.append(f"the ownership record of owner {before.inventory.owner!r} changed "
                   "(another apply ran?)")
    for key in sorted(set(before.server) | set(after.server)):
        was_v, now_v = before.server.get(key), after.server.get(key)
        if was_v != now_v:
            out.append(f"server setting {key} is {_setting(now_v)} (was {_setting(was_v)})")
    return out


def _setting(value: str | None) -> str:
    return "the default" if value is None else repr(value)


def check_matches(plan: Plan, config: Config, name: str) -> None:
    """Refuse to apply ``plan`` with ``config`` unless it was made from this very file.

    The owner must be the file's, the file's bytes those the plan was made from
    (else the plan is stale), every target it changes declared, and observed.
    """
    if plan.owner != config.owner:
        raise PlanFileError(f"{name} was made for owner {plan.owner!r}, but {config.path} "
                            f"declares owner {config.owner!r}")
    if plan.desired_digest is None or plan.observed is None:
        raise PlanFileError(f"{name} records neither the file it was made from nor what it "
                            "observed, so it cannot be checked; make a new plan with --out")
    if plan.desired_digest != config.digest:
        raise StalePlan(f"the saved plan {name} is stale: {config.path} has changed since the "
                        f"plan was made (sha256 {short_hex(plan.desired_digest)}, now "
                        f"{short_hex(config.digest)}); make a new plan")
    for target in touched(plan):
        if target not in config.targets:
            declared = ", ".join(sorted(config.targets)) or "none"
            raise PlanFileError(f"{name} changes target {target!r}, which {config.path} does "
                                f"not declare (it declares: {declared})")
        if target not in plan.observed:
            raise PlanFileError(f"{name} records nothing it observed on target {target!r}, so "
                                "it cannot be checked; make a new plan with --out")


def check_fresh(plan: Plan, states: Mapping[str, TargetState], name: str) -> None:
    """Raise :class:`StalePlan` listing every recorded item that moved since ``plan``.

    ``states`` are fresh observations of (at least) every target ``plan`` changes.
    """
    problems: list[str] = []
    observed = plan.observed or {}
    for target in touched(plan):
        before = observed[target]
        after = take(states[target], plan.owner, before.images, before.aliases)
        problems += [f"target {target!r}: {d}" for d in differences(before, after)]
    if problems:
        raise StalePlan("\n".join([
            f"the saved plan {name} is stale: the stores changed since it was made; "
            "nothing was changed; make a new plan", *problems]))
