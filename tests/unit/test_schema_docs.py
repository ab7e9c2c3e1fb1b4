"""The JSON Schemas are written for people and shipped: descriptions, titles, ids, files.

* every node (root, each ``$defs`` entry, each property) has a description;
* the desired-state and lock schemas title every property by hand; no title in
  any schema is pydantic's automatic one;
* each schema has its stable ``$id`` (a URN, see ``reconciler.model.schemas``);
* the two committed copies (``schemas/`` and ``reconciler/schemas/``) are the
  generated text, and the wheel carries the package copy;
* ``incus-images schema NAME`` prints the shipped file byte for byte.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler.adapters import schemas as schema_files
from reconciler.cli import cli
from reconciler.desired.serverkeys import SERVER_KEYS
from reconciler.model import schemas
from reconciler.model.desired import SERVER_SETTINGS

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("desired-state", "plan", "lock", "status")


def nodes(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The root, every ``$defs`` entry and every property (nested ones included)."""
    found: list[tuple[str, dict[str, Any]]] = [("(root)", schema)]
    found += [(f"$defs.{k}", v) for k, v in schema.get("$defs", {}).items()]
    out: list[tuple[str, dict[str, Any]]] = []
    todo = list(found)
    while todo:
        where, node = todo.pop()
        out.append((where, node))
        for key, sub in node.get("properties", {}).items():
            todo.append((f"{where}.{key}", sub))
    return out


def counts() -> dict[str, tuple[int, int]]:
    """Schema -> (nodes, nodes without a description)."""
    result = {}
    for name in NAMES:
        found = nodes(schemas.generated()[schemas.file_name(name)])
        result[name] = (len(found), sum(1 for _, n in found if "description" not in n))
    return result


def test_every_node_of_every_schema_has_a_description() -> None:
    missing = [f"{name}: {where}" for name in NAMES
               for where, node in nodes(schemas.generated()[schemas.file_name(name)])
               if not str(node.get("description", "")).strip()]
    assert missing == []
    total = sum(n for n, _ in counts().values())
    assert total >= 180  # 49 + 105 + 11 + 23 today: a shrinking count means lost nodes
    assert all(without == 0 for _, without in counts().values())


def test_descriptions_are_plain_text() -> None:
    for name in NAMES:
        for where, node in nodes(schemas.generated()[schemas.file_name(name)]):
            text = node["description"]
            assert "``" not in text and not re.search(r":[a-z]+:`", text), (name, where)


def _title(schema: dict[str, Any], node: dict[str, Any]) -> str | None:
    """A node's title, or (a property that is a ``$ref``) the referenced definition's:
    what an editor shows."""
    ref = node.get("$ref")
    if not node.get("title") and isinstance(ref, str) and ref.startswith("#/$defs/"):
        return schema["$defs"][ref.rsplit("/", 1)[1]].get("title")
    return node.get("title")


@pytest.mark.parametrize("name", ["desired-state", "lock"])
def test_user_written_files_title_every_property_by_hand(name: str) -> None:
    schema = schemas.generated()[schemas.file_name(name)]
    for where, node in nodes(schema):
        assert _title(schema, node), f"{name}: {where} has no title"


def _automatic(key: str) -> str:
    return key.replace("_", " ").title()


@pytest.mark.parametrize("name", NAMES)
def test_no_title_is_pydantics_automatic_one(name: str) -> None:
    schema = schemas.generated()[schemas.file_name(name)]
    for key, node in schema.get("$defs", {}).items():
        assert node.get("title") != key, f"{name}: $defs.{key} has its class name as title"
    hand_titled = name in ("desired-state", "lock")
    for where, node in nodes(schema):
        title = node.get("title")
        assert title != "", where
        if not hand_titled and where.count(".") >= 1 and title is not None:
            assert title != _automatic(where.rsplit(".", 1)[1]), f"{name}: {where}"


@pytest.mark.parametrize("name", ["desired-state", "lock"])
def test_user_facing_fields_carry_examples(name: str) -> None:
    schema = schemas.generated()[schemas.file_name(name)]
    properties = [(where, node) for where, node in nodes(schema)
                  if where.count(".") >= (2 if where.startswith("$defs.") else 1)]
    lacking = [where for where, node in properties
               if "examples" not in node and where != "(root).images"]
    assert properties and lacking == []


def test_each_schema_has_a_stable_urn_id() -> None:
    ids = {name: schemas.generated()[schemas.file_name(name)]["$id"] for name in NAMES}
    assert ids == {name: f"urn:incus-images:schema:{name}:1" for name in NAMES}


def test_the_desired_state_description_speaks_of_defaults_and_examples() -> None:
    props = schemas.generated()["desired-state.schema.json"]["properties"]
    assert "Default: incus-images" in props["owner"]["description"]
    assert props["owner"]["examples"] == ["platform-web"]
    assert props["owner"]["title"] == "Owner"


@pytest.mark.parametrize("copy", ["schemas", "reconciler/schemas"])
@pytest.mark.parametrize("name", NAMES)
def test_both_committed_copies_are_the_generated_text(copy: str, name: str) -> None:
    file = schemas.file_name(name)
    committed = (ROOT / copy / file).read_text(encoding="utf-8")
    assert committed == schema_files.render(schemas.generated()[file]), (
        f"{copy}/{file} is stale: run `python -m reconciler.adapters.schemas`")


def test_the_two_copies_hold_the_same_files() -> None:
    top = sorted(p.name for p in (ROOT / "schemas").glob("*.json"))
    shipped = sorted(p.name for p in (ROOT / "reconciler" / "schemas").glob("*.json"))
    assert top == shipped == sorted(schemas.file_name(n) for n in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_schema_command_prints_the_shipped_file(name: str) -> None:
    result = CliRunner().invoke(cli, ["schema", name])
    assert result.exit_code == 0, result.output
    assert result.stdout == (ROOT / "schemas" / schemas.file_name(name)).read_text("utf-8")
    assert json.loads(result.stdout)["$id"].endswith(f":{name}:1")


def test_schema_command_refuses_an_unknown_name() -> None:
    result = CliRunner().invoke(cli, ["schema", "desired"])
    assert result.exit_code == 1
    assert "'desired' is not one of 'desired-state', 'plan', 'lock', 'status'" in result.stderr
    assert result.stdout == ""


def test_packaged_refuses_an_unknown_name() -> None:
    from reconciler.errors import IncusImagesError

    with pytest.raises(IncusImagesError, match="unknown schema"):
        schema_files.packaged("nope")


def test_the_schema_server_keys_are_the_ones_validate_accepts() -> None:
    assert sorted(SERVER_SETTINGS) == sorted(SERVER_KEYS)


def test_the_package_declares_the_schemas_as_package_data() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    assert "schemas/*.json" in project["tool"]["setuptools"]["package-data"]["reconciler"]
    # The wheel itself is built and opened by tests/integration/test_wheel.py.
