"""``status --format yaml`` is the JSON document as YAML; ``--format csv`` one row per image.

CSV: a header row (:data:`CSV_COLUMNS`), then one row per image of every target, fields
quoted as Go's encoding/csv quotes them (what ``incus image list --format csv`` prints),
several aliases in one quoted field joined by newlines like incus's ALIASES column.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from reconciler.model.status import ImageStatus, Provenance, StatusReport, TargetStatus
from reconciler.render import yamltext
from reconciler.render.status import CSV_COLUMNS, csv_field, render_csv, render_json, render_yaml
from tests.unit.test_cli import FULL, World

FP1, FP2 = "1" * 64, "2" * 64
EXPIRES = datetime(2027, 6, 30, tzinfo=UTC)
USED = datetime(2026, 11, 1, 8, 30, tzinfo=UTC)


def report() -> StatusReport:
    managed = ImageStatus(
        fingerprint=FP1, managed=True, owner="platform-web", cached=False,
        aliases=["debian/bookworm", "debian-12"], source="images:debian/12", auto_update=True,
        expires_at=EXPIRES, last_used_at=USED, size=123456789, update_available=False,
        provenance=Provenance(commit="c" * 40, repository="https://git.example/r",
                              path="images.yaml", dirty=False))
    stranger = ImageStatus(
        fingerprint=FP2, managed=False, owner=None, cached=True, aliases=["a,b", 'q"t'],
        source=None, auto_update=False, expires_at=None, last_used_at=None, size=0,
        update_available=None)
    return StatusReport(targets={
        "local": TargetStatus(project="default", images=[managed, stranger]),
        "yes": TargetStatus(project="web", images=[]),
    })


def test_yaml_is_the_json_document() -> None:
    text = render_yaml(report())
    assert YAML(typ="safe").load(text) == json.loads(render_json(report()))
    assert YAML(typ="safe", pure=True).load(text) == json.loads(render_json(report()))
    assert text.startswith("targets:\n  local:\n    project: \"default\"\n    images:\n"
                           f"      - fingerprint: \"{FP1}\"\n        managed: true\n")
    assert '\n  "yes":\n    project: "web"\n    images: []\n' in text  # a reserved word key


@pytest.mark.parametrize("document", [
    {}, [], {"a": []}, {"a": {}}, [[1, [2, {"x": None}]]], {"no": "on", "1": 1.5, "": "x"},
    {"k": "line\nbreak\u001b", "t": True, "n": None, "nested": [{"a": 1, "b": [1, 2]}]},
])
def test_yamltext_round_trips(document: object) -> None:
    assert YAML(typ="safe").load(yamltext.dump(document)) == document


def test_csv_header_then_one_row_per_image() -> None:
    text = render_csv(report())
    assert text == (
        "target,project,fingerprint,managed,owner,cached,aliases,source,auto_update,"
        "expires_at,last_used_at,size,update_available\n"
        f'local,default,{FP1},true,platform-web,false,"debian-12\ndebian/bookworm",'
        "images:debian/12,true,2027-06-30T00:00:00Z,2026-11-01T08:30:00Z,123456789,false\n"
        f'local,default,{FP2},false,,true,"a,b\nq""t",,false,,,0,\n')
    assert text.split("\n", 1)[0] == ",".join(CSV_COLUMNS)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 2 and [r["target"] for r in rows] == ["local", "local"]
    assert rows[0]["aliases"].split("\n") == ["debian-12", "debian/bookworm"]
    assert rows[1]["aliases"].split("\n") == ["a,b", 'q"t']
    assert rows[1]["owner"] == "" and rows[1]["update_available"] == ""
    assert "provenance" not in rows[0]


def test_csv_of_no_images_is_the_header() -> None:
    assert render_csv(StatusReport()) == ",".join(CSV_COLUMNS) + "\n"


@pytest.mark.parametrize(("value", "field"), [
    ("plain", "plain"), ("", ""), (None, ""), (True, "true"), (7, "7"),
    ("a,b", '"a,b"'), ('say "hi"', '"say ""hi"""'), ("two\nlines", '"two\nlines"'),
    ("cr\r", '"cr\r"'), (" lead", '" lead"'), ("\\.", '"\\."'), ("trail ", "trail "),
    (["b", "a"], '"a\nb"'), (["only"], "only"), ([], ""),
])
def test_csv_field_quotes_like_go_encoding_csv(value: object, field: str) -> None:
    assert csv_field(value) == field


@pytest.fixture
def w(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
      capsys: pytest.CaptureFixture[str]) -> World:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    return World(root=tmp_path, capsys=capsys)


def test_status_command_prints_yaml_and_csv(w: World) -> None:
    w.applied(FULL)
    code, out_json, _ = w.run("status", "--format", "json", "--offline")
    assert code == 0
    code, out_yaml, err = w.run("status", "--format", "yaml", "--offline")
    assert code == 0, err
    assert YAML(typ="safe").load(out_yaml) == json.loads(out_json)
    code, out_csv, err = w.run("status", "--format", "csv", "--offline")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out_csv)))
    images = [(t, i) for t, v in json.loads(out_json)["targets"].items() for i in v["images"]]
    assert len(rows) == len(images) > 0
    for row, (target, image) in zip(rows, images, strict=True):
        assert row["target"] == target and row["fingerprint"] == image["fingerprint"]
        assert row["size"] == str(image["size"])


def test_status_refuses_an_unknown_format(w: World) -> None:
    w.write(FULL)
    code, out, err = w.run("status", "--format", "xml")
    assert code == 1 and out == ""
    assert "'xml' is not one of 'text', 'json', 'yaml', 'csv'" in err
