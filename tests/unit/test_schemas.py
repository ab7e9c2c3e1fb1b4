"""The committed JSON Schemas are the generated ones; examples and plans satisfy them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from reconciler.adapters import schemas as schema_files
from reconciler.desired.load import load_config
from reconciler.model import schemas
from reconciler.model.plan import Action, Change, Plan, PlanWarning, summarize

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
SCHEMA_LINE = "# yaml-language-server: $schema=../schemas/desired-state.schema.json"
FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER
ENVIRON = {
    "INCUS_SOCKET": "/run/incus/unix.socket",
    "INCUS_PROD_CERT": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    "INCUS_PROD_KEY": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
    "INCUS_STAGING_CERT": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    "INCUS_STAGING_KEY": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
}
FP_OLD = "a" * 64
FP_NEW = "b" * 64


@pytest.mark.parametrize("name", sorted(schemas.GENERATORS))
def test_committed_schema_is_generated(name: str) -> None:
    committed = (ROOT / "schemas" / name).read_text(encoding="utf-8")
    assert committed == schema_files.render(schemas.generated()[name]), (
        f"schemas/{name} is stale: run `python -m reconciler.adapters.schemas`"
    )


@pytest.mark.parametrize("name", sorted(schemas.GENERATORS))
def test_schema_is_valid_json_schema(name: str) -> None:
    schema = schemas.generated()[name]
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_write_renders_every_file(tmp_path: Path) -> None:
    written = schema_files.write(tmp_path)
    assert sorted(p.name for p in written) == sorted(schemas.GENERATORS)
    for path in written:
        assert path.read_text(encoding="utf-8").endswith("}\n")


def test_there_are_examples() -> None:
    names = {p.name for p in EXAMPLES}
    assert {"minimal.yaml", "pinned.yaml", "two-targets.yaml", "full.yaml"} <= names
    assert len(names) >= 6


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_loads(example: Path) -> None:
    assert example.read_text(encoding="utf-8").splitlines()[0] == SCHEMA_LINE
    config = load_config(example, ENVIRON)
    assert config.path == str(example)
    assert config.entries


def _json_data(node: Any) -> Any:
    """YAML data as an editor's JSON view sees it: dates are strings."""
    if isinstance(node, dict):
        return {str(k): _json_data(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_json_data(v) for v in node]
    if isinstance(node, datetime):
        return node.isoformat().replace("+00:00", "Z")
    if hasattr(node, "isoformat"):
        return node.isoformat()
    return node


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_satisfies_the_schema(example: Path) -> None:
    data = _json_data(YAML(typ="safe").load(example.read_text(encoding="utf-8")))
    schema = schemas.generated()["desired-state.schema.json"]
    jsonschema.validate(data, schema, format_checker=FORMATS)


def test_examples_with_different_owners_share_a_store() -> None:
    owners = {}
    for example in EXAMPLES:
        if example.name.startswith("owner-"):
            config = load_config(example, ENVIRON)
            owners[config.owner] = {e.target for e in config.entries}
    assert len(owners) == 2
    assert list(owners.values()) == [{"local"}, {"local"}]


def test_desired_schema_rejects_unknown_keys() -> None:
    schema = schemas.generated()["desired-state.schema.json"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"version": 1, "images": [{"source": "a:b", "x": 1}]}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"version": 2}, schema)


CONTRACT_PLAN = {
    "format_version": "1",
    "changes": [
        {"action": "image.download", "target": "local", "project": "default",
         "fingerprint": FP_NEW, "source": "images:debian/12", "size": 123456789,
         "reason": "declared, not in store"},
        {"action": "alias.move", "target": "local", "project": "default",
         "alias": "debian-12", "from": FP_OLD, "to": FP_NEW, "reason": "newer build"},
    ],
    "summary": {"actions": {"image.download": 1, "alias.move": 1}, "download_bytes": 123456789},
    "warnings": [
        {"code": "requirements.nesting", "target": "local", "image": "images:nest/1.0",
         "message": "instances need security.nesting=true; none of the profiles [default] "
                    "sets it"},
    ],
}


def test_plan_schema_accepts_the_contract_example() -> None:
    jsonschema.validate(CONTRACT_PLAN, schemas.generated()["plan.schema.json"])


def test_plan_schema_accepts_a_model_plan() -> None:
    changes = (
        Change(action=Action.IMAGE_DOWNLOAD, target="local", project="default",
               reason="declared, not in store", fingerprint=FP_NEW,
               source="images:debian/12", size=42),
        Change.model_validate({"action": "alias.move", "target": "local", "project": "default",
                               "reason": "newer build", "alias": "debian-12",
                               "from": FP_OLD, "to": FP_NEW}),
        Change(action=Action.IMAGE_DELETE, target="local", project="default",
               reason="replaced", fingerprint=FP_OLD),
    )
    plan = Plan(
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        changes=changes,
        summary=summarize(changes),
        warnings=(PlanWarning(code="lock.missing", target="local", image="images:debian/12",
                              message="no lock file"),),
    )
    document = json.loads(json.dumps(plan.to_json_dict()))
    schema = schemas.generated()["plan.schema.json"]
    jsonschema.validate(document, schema, format_checker=FORMATS)
    assert document["changes"][1]["from"] == FP_OLD


def test_plan_schema_rejects_a_change_without_reason() -> None:
    bad = json.loads(json.dumps(CONTRACT_PLAN))
    del bad["changes"][0]["reason"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schemas.generated()["plan.schema.json"])
