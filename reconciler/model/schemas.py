"""The JSON Schemas of what users write and what this tool prints, generated from the models.

The pydantic models are the single source; ``reconciler.adapters.schemas`` writes
these to the committed files under ``schemas/`` and to the copies the package ships
(``reconciler/schemas/``), and ``incus-images schema NAME`` prints the shipped copy.

Invariants (tests/unit/test_schema_docs.py checks them):

* every schema has a stable ``$id``, ``urn:incus-images:schema:<name>:<version>``.
  A URN, not a URL: the project owns no host to publish the schemas on, and an
  ``$id`` that looks like a URL invites tools to fetch it.  ``<version>`` is the
  document's format version (the desired-state file's ``version``, the plan's
  ``format_version``, ...): it changes when, and only when, the format does;
* every node (the root, every ``$defs`` entry, every property) has a description
  written for a person; the desired-state and lock schemas also give every
  property a title and the user-facing fields examples;
* no title is pydantic's automatic one (a class name, or a field name in title
  case): a title is written by hand or absent.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from reconciler.model.base import Frozen, Stored
from reconciler.model.desired import DesiredStateFile
from reconciler.model.docstrings import describe_fields
from reconciler.model.lock import LockFile
from reconciler.model.plan import FieldChange, Plan
from reconciler.model.schema_names import NAMES as NAMES
from reconciler.model.status import StatusReport

DRAFT = "https://json-schema.org/draft/2020-12/schema"
ID_PREFIX = "urn:incus-images:schema:"


def schema_id(name: str, version: str = "1") -> str:
    """The stable ``$id`` of schema ``name`` at format ``version``."""
    return f"{ID_PREFIX}{name}:{version}"


def _finish(schema: dict[str, Any], name: str) -> dict[str, Any]:
    """``$schema`` and ``$id`` first, then the model's schema without automatic titles."""
    defs = schema.get("$defs", {})
    for key, node in defs.items():
        if node.get("title") == key:  # pydantic's class-name title
            del node["title"]
    _drop_blank_titles(schema)
    return {"$schema": DRAFT, "$id": schema_id(name), **schema}


_ROLE = re.compile(r":[a-z]+:`~?(?:[\w.]+\.)?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")


def _plain(text: str) -> str:
    """A docstring as an editor shows it: reST roles and double backquotes dropped,
    paragraphs kept, lines joined."""
    text = _LITERAL.sub(r"\1", _ROLE.sub(r"\1", text))
    return "\n\n".join(" ".join(p.split()) for p in text.split("\n\n"))


def _drop_blank_titles(node: Any) -> None:
    """Remove the ``title: ""`` marks :func:`reconciler.model.base._no_title` leaves and
    turn descriptions into plain text."""
    if isinstance(node, dict):
        if node.get("title") == "":
            del node["title"]
        if isinstance(node.get("description"), str):
            node["description"] = _plain(node["description"])
        for value in node.values():
            _drop_blank_titles(value)
    elif isinstance(node, list):
        for value in node:
            _drop_blank_titles(value)


def desired_state_schema() -> dict[str, Any]:
    """What users write (validation mode: every default is optional)."""
    describe_fields(Frozen, Stored)
    return _finish(DesiredStateFile.model_json_schema(mode="validation"), "desired-state")


def plan_schema() -> dict[str, Any]:
    """What ``plan --format json`` and saved plans contain (``Plan.to_json_dict()``)."""
    describe_fields(Frozen, Stored)
    schema = Plan.model_json_schema(mode="serialization", by_alias=True)
    schema["title"] = "incus-images plan"
    schema["description"] = (
        "What incus-images plan --format json prints and plan --out saves: the changes "
        "apply would make, in order, with a summary and warnings. A saved plan also holds "
        "what it observed and its own digest.")
    # FieldChange serialises through a plain serializer (both ends always written),
    # which pydantic describes as any object; its validation schema says what it holds.
    field_change = FieldChange.model_json_schema(mode="validation", by_alias=True)
    field_change.pop("title", None)
    field_change["required"] = ["from", "to"]
    schema["$defs"]["FieldChange"] = field_change
    return _finish(schema, "plan")


def lock_schema() -> dict[str, Any]:
    """What ``incus-images lock`` writes (``images.lock.yaml``)."""
    describe_fields(Frozen, Stored)
    schema = LockFile.model_json_schema(mode="serialization")
    schema["description"] = (
        "The lock file incus-images lock writes beside the desired-state file "
        "(images.yaml -> images.lock.yaml): the build each tracked entry resolves to on "
        "each target. Commit it; plan and apply use these builds until lock --upgrade.")
    return _finish(schema, "lock")


def status_schema() -> dict[str, Any]:
    """What ``status --format json`` (and ``--format yaml``) prints."""
    describe_fields(Frozen, Stored)
    return _finish(StatusReport.model_json_schema(mode="serialization"), "status")


GENERATORS: dict[str, Callable[[], dict[str, Any]]] = {
    "desired-state.schema.json": desired_state_schema,
    "plan.schema.json": plan_schema,
    "lock.schema.json": lock_schema,
    "status.schema.json": status_schema,
}


def file_name(name: str) -> str:
    """``desired-state`` -> ``desired-state.schema.json``."""
    return f"{name}.schema.json"


def generated() -> dict[str, dict[str, Any]]:
    """File name under ``schemas/`` -> the schema it must hold."""
    return {name: make() for name, make in GENERATORS.items()}
