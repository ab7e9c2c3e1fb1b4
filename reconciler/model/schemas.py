"""The JSON Schemas of what users write and what this tool prints, generated from the models.

The pydantic models are the single source; ``reconciler.adapters.schemas`` writes
these to the committed files under ``schemas/`` (``python -m reconciler.adapters.schemas``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reconciler.model.desired import DesiredStateFile
from reconciler.model.lock import LockFile
from reconciler.model.plan import Plan
from reconciler.model.status import StatusReport

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def desired_state_schema() -> dict[str, Any]:
    """What users write (validation mode: every default is optional)."""
    schema = DesiredStateFile.model_json_schema(mode="validation")
    schema["title"] = "incus-images desired state (version 1)"
    return {"$schema": DRAFT, **schema}


def plan_schema() -> dict[str, Any]:
    """What ``plan --format json`` and saved plans contain (``Plan.to_json_dict()``)."""
    schema = Plan.model_json_schema(mode="serialization", by_alias=True)
    schema["title"] = "incus-images plan"
    return {"$schema": DRAFT, **schema}


def lock_schema() -> dict[str, Any]:
    """What ``incus-images lock`` writes (``images.lock.yaml``)."""
    schema = LockFile.model_json_schema(mode="serialization")
    schema["title"] = "incus-images lock file (version 1)"
    return {"$schema": DRAFT, **schema}


def status_schema() -> dict[str, Any]:
    """What ``status --format json`` prints (``StatusReport.to_json_dict()``)."""
    schema = StatusReport.model_json_schema(mode="serialization")
    schema["title"] = "incus-images status"
    return {"$schema": DRAFT, **schema}


GENERATORS: dict[str, Callable[[], dict[str, Any]]] = {
    "desired-state.schema.json": desired_state_schema,
    "plan.schema.json": plan_schema,
    "lock.schema.json": lock_schema,
    "status.schema.json": status_schema,
}


def generated() -> dict[str, dict[str, Any]]:
    """File name under ``schemas/`` -> the schema it must hold."""
    return {name: make() for name, make in GENERATORS.items()}
