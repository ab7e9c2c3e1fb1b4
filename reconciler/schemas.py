"""Generate the committed JSON Schemas from the models: ``python -m reconciler.schemas``.

The files under ``schemas/`` are generated, never edited by hand: the pydantic
models are the single source.  Output is ``json.dumps(indent=2, sort_keys=True)``
plus a trailing newline, so regenerating an unchanged model changes no byte.
``tests/unit/test_schemas.py`` fails when a committed file is stale.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler.adapters.files import write_atomic
from reconciler.model.desired import DesiredStateFile
from reconciler.model.lock import LockFile
from reconciler.model.plan import Plan
from reconciler.model.status import StatusReport

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


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


def render(schema: dict[str, Any]) -> str:
    """The exact text of a schema file."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Rewrite every generated schema file; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in generated().items():
        target = directory / name
        write_atomic(target, render(schema).encode("utf-8"), mode=None)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    directory = Path(args[0]) if args else SCHEMA_DIR
    for path in write(directory):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
