"""Renderers against literal expected output: text, markdown, JSON (round trip + schema)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema  # type: ignore[import-untyped, unused-ignore]
import pytest

from reconciler.model.plan import (
    Action,
    Change,
    FieldChange,
    Plan,
    PlanWarning,
    Untouched,
    summarize,
)
from reconciler.model.result import ApplyResult, Outcome, Status
from reconciler.render import json as json_render
from reconciler.render import markdown, render_plan, text
from reconciler.render.units import elapsed, human_bytes, short, value

NEW = "4f3a2b1c9d8e" + "0" * 52
OLD = "1" * 64
PIN = "2" * 64
OTHER = "3" * 64


def _change(action: Action, target: str = "local", project: str = "default",
            **kw: Any) -> Change:
    return Change(action=action, target=target, project=project, **kw)


CHANGES = (
    _change(Action.SERVER_UPDATE, reason="declared server setting differs",
            fields={"images.auto_update_interval": FieldChange(from_="6", to="12")}),
    _change(Action.IMAGE_DOWNLOAD, reason="declared, not in store", fingerprint=NEW,
            source="images:debian/12", size=123456789),
    _change(Action.IMAGE_ADOPT, reason="nobody's image with the declared fingerprint",
            fingerprint=PIN, source="images:alpine/3.20"),
    _change(Action.IMAGE_UPDATE, reason="declared fields differ", fingerprint=PIN,
            source="images:alpine/3.20",
            fields={"auto_update": FieldChange(from_=True, to=False),
                    "profiles": FieldChange(from_=["default"], to=["default", "web"]),
                    "properties": FieldChange(from_={"team": None, "old": "x"},
                                              to={"team": "web", "old": None})}),
    _change(Action.ALIAS_CREATE, reason="declared by images:debian/12", alias="debian-12",
            to=NEW, description="Debian 12"),
    _change(Action.ALIAS_MOVE, reason="follows the declared build", alias="debian/bookworm",
            from_=OLD, to=NEW),
    _change(Action.ALIAS_UPDATE, reason="description changed", alias="alpine", fingerprint=PIN,
            description="a | b", fields={"description": FieldChange(from_="", to="a | b")}),
    _change(Action.ALIAS_DELETE, reason="no longer declared", alias="old", from_=OLD),
    _change(Action.IMAGE_DELETE, target="prod", project="web", reason="no longer declared",
            fingerprint=OLD, source="images:debian/11"),
)

PLAN = Plan(
    changes=CHANGES,
    summary=summarize(CHANGES),
    warnings=(PlanWarning(code="requirements.nesting", target="local", image="images:nest/1.0",
                          message="instances need security.nesting=true"),),
    untouched=(Untouched(target="local", fingerprint=OTHER, cached=True, aliases=("scratch",)),
               Untouched(target="prod", fingerprint=OTHER, owner="web")),
)

EXPECTED_TEXT = """\
Warnings:
  ! local: images:nest/1.0: instances need security.nesting=true [requirements.nesting]

Target local (project default):
  ~ server.update   images.auto_update_interval: 6 -> 12  # declared server setting differs
  + image.download  images:debian/12 4f3a2b1c9d8e (123.5 MB)  # declared, not in store
  + image.adopt     images:alpine/3.20 222222222222  # nobody's image with the declared fingerprint
  ~ image.update    images:alpine/3.20 222222222222  # declared fields differ
      auto_update: true -> false
      profiles: [default] -> [default, web]
      properties.team: (none) -> web
      properties.old: x -> (none)
  + alias.create    debian-12 -> 4f3a2b1c9d8e (description: "Debian 12")  \
# declared by images:debian/12
  ~ alias.move      debian/bookworm: 111111111111 -> 4f3a2b1c9d8e  # follows the declared build
  ~ alias.update    alpine on 222222222222  # description changed
      description: "" -> "a | b"
  - alias.delete    old (on 111111111111)  # no longer declared
  left alone: 333333333333 (nobody, cached) aliases: scratch

Target prod (project web):
  - image.delete    images:debian/11 111111111111  # no longer declared
  left alone: 333333333333 (owner web)

Plan: 1 server setting to change, 1 to download, 1 to adopt, 1 to update, \
4 alias changes, 1 to delete (123.5 MB to download).
"""

EXPECTED_MARKDOWN = """\
**Plan:** 1 server setting to change, 1 to download, 1 to adopt, 1 to update, \
4 alias changes, 1 to delete (123.5 MB to download).

**Warnings (1)**

- `requirements.nesting` on `local`, `images:nest/1.0`: instances need security.nesting=true

### Target `local` (project `default`)

| action | image / alias | fingerprint | reason |
| --- | --- | --- | --- |
| `~ server.update` | `images.auto_update_interval` |  | declared server setting differs; \
`images.auto_update_interval: 6 -> 12` |
| `+ image.download` | `images:debian/12` | `4f3a2b1c9d8e` | declared, not in store; 123.5 MB |
| `+ image.adopt` | `images:alpine/3.20` | `222222222222` | \
nobody's image with the declared fingerprint |
| `~ image.update` | `images:alpine/3.20` | `222222222222` | declared fields differ; \
`auto_update: true -> false`; `profiles: [default] -> [default, web]`; \
`properties.team: (none) -> web`; `properties.old: x -> (none)` |
| `+ alias.create` | `debian-12` | `4f3a2b1c9d8e` | declared by images:debian/12; \
description: "Debian 12" |
| `~ alias.move` | `debian/bookworm` | `111111111111` → `4f3a2b1c9d8e` | \
follows the declared build |
| `~ alias.update` | `alpine` | `222222222222` | description changed; \
`description: "" -> "a \\| b"` |
| `- alias.delete` | `old` | `111111111111` | no longer declared |

Left alone (not managed by this file):

- 333333333333 (nobody, cached) aliases: scratch

### Target `prod` (project `web`)

| action | image / alias | fingerprint | reason |
| --- | --- | --- | --- |
| `- image.delete` | `images:debian/11` | `111111111111` | no longer declared |

Left alone (not managed by this file):

- 333333333333 (owner web)
"""


def test_text_plan_every_action() -> None:
    assert text.render_plan(PLAN) == EXPECTED_TEXT


def test_markdown_plan_every_action() -> None:
    assert markdown.render_plan(PLAN) == EXPECTED_MARKDOWN


def test_dispatch_picks_the_format() -> None:
    assert render_plan(PLAN) == EXPECTED_TEXT
    assert render_plan(PLAN, "markdown") == EXPECTED_MARKDOWN
    assert render_plan(PLAN, "json") == json_render.render_plan(PLAN)


def test_no_changes_names_the_file() -> None:
    assert text.render_plan(Plan()) == "No changes. The image stores match images.yaml.\n"
    assert text.render_plan(Plan(), file_name="site.yaml") == (
        "No changes. The image stores match site.yaml.\n")
    assert markdown.render_plan(Plan()) == (
        "**No changes.** The image stores match `images.yaml`.\n")


def test_no_changes_still_shows_warnings_and_untouched() -> None:
    plan = Plan(warnings=PLAN.warnings, untouched=PLAN.untouched[1:])
    assert text.render_plan(plan) == (
        "Warnings:\n"
        "  ! local: images:nest/1.0: instances need security.nesting=true "
        "[requirements.nesting]\n"
        "\n"
        "Target prod:\n"
        "  left alone: 333333333333 (owner web)\n"
        "\n"
        "No changes. The image stores match images.yaml.\n"
    )


def test_download_replacing_a_cached_copy_says_so() -> None:
    change = CHANGES[1].model_copy(update={"replace_cached": True, "size": 512})
    line = text.change_line(change)
    assert line == ("+ image.download  images:debian/12 4f3a2b1c9d8e "
                    "(512 B, replaces the daemon-cached copy)")


def test_json_is_the_contract_dict() -> None:
    out = json_render.render_plan(PLAN)
    assert out.endswith("}\n")
    assert out == json.dumps(PLAN.to_json_dict(), indent=2, sort_keys=False) + "\n"
    doc = json.loads(out)
    assert doc["format_version"] == "1"
    assert doc["summary"] == {"actions": {a.value: 1 for a in Action
                                          if a is not Action.IMAGE_REFRESH},
                              "download_bytes": 123456789}
    move = next(c for c in doc["changes"] if c["action"] == "alias.move")
    assert move["from"] == OLD and move["to"] == NEW


def test_json_round_trips_and_matches_the_schema() -> None:
    doc = json.loads(json_render.render_plan(PLAN))
    assert Plan.model_validate(doc) == PLAN
    schema = Plan.model_json_schema(by_alias=True)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(doc, schema)
    jsonschema.validate(json.loads(json_render.render_plan(Plan())), schema)


def test_empty_plan_json_has_empty_changes() -> None:
    doc = json.loads(json_render.render_plan(Plan()))
    assert doc["changes"] == [] and doc["warnings"] == []


RESULT = ApplyResult(outcomes=(
    Outcome(change=CHANGES[1], status=Status.DONE, via="upload", fingerprint=NEW),
    Outcome(change=CHANGES[4], status=Status.FAILED, message="alias exists"),
    Outcome(change=CHANGES[5], status=Status.SKIPPED, message="earlier change failed"),
    Outcome(change=CHANGES[8], status=Status.DONE),
))


def test_text_result_summarises_instead_of_repeating_the_plan() -> None:
    assert text.render_result(RESULT, seconds=75.9) == (
        "Apply failed: 2 done, 1 failed, 1 skipped in 1m15s.\n"
        "  done:    1 image.download (123.5 MB downloaded), 1 image.delete\n"
        "  failed:  local: alias.create debian-12 4f3a2b1c9d8e: alias exists\n"
        "  skipped: local: alias.move debian/bookworm 4f3a2b1c9d8e (earlier change failed)\n"
    )


def test_text_result_success_and_empty() -> None:
    ok = ApplyResult(outcomes=(RESULT.outcomes[3],))
    assert text.render_result(ok) == "Apply complete: 1 done.\n  done:    1 image.delete\n"
    assert text.render_result(ApplyResult()) == "Apply complete: no changes.\n"
    nothing_made = ApplyResult(outcomes=(RESULT.outcomes[1],))
    assert text.render_result(nothing_made, seconds=0) == (
        "Apply failed: 0 done, 1 failed in 0s.\n"
        "  failed:  local: alias.create debian-12 4f3a2b1c9d8e: alias exists\n")


@pytest.mark.parametrize(("seconds", "expected"), [
    (0, "0s"), (59.99, "59s"), (60, "1m00s"), (3599, "59m59s"), (3600, "1h00m"), (-1, "0s"),
])
def test_elapsed(seconds: float, expected: str) -> None:
    assert elapsed(seconds) == expected


def test_json_result() -> None:
    doc = json.loads(json_render.render_result(RESULT))
    assert doc["ok"] is False
    assert [o["status"] for o in doc["outcomes"]] == ["done", "failed", "skipped", "done"]
    assert doc["outcomes"][0]["via"] == "upload"
    assert doc["outcomes"][0]["change"]["action"] == "image.download"


@pytest.mark.parametrize(("size", "expected"), [
    (0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (123456789, "123.5 MB"),
    (999_950_000, "1.0 GB"), (5 * 10**12, "5.0 TB"), (10**19, "10.0 EB"), (999_949_999, "999.9 MB"),
])
def test_human_bytes(size: int, expected: str) -> None:
    assert human_bytes(size) == expected


@pytest.mark.parametrize(("v", "expected"), [
    (None, "(none)"), (True, "true"), (False, "false"), ("web", "web"), ("", '""'),
    ("two words", '"two words"'), (["a", "b"], "[a, b]"), ({"k": None}, "{k: (none)}"),
    (6, "6"),
])
def test_value(v: object, expected: str) -> None:
    assert value(v) == expected


def test_short() -> None:
    assert short(NEW) == "4f3a2b1c9d8e"
    assert short(None) == "?"


def test_markdown_cells_cannot_break_the_table() -> None:
    change = CHANGES[7].model_copy(update={"reason": "a | b\nc"})
    out = markdown.render_plan(Plan(changes=(change,), summary=summarize((change,))))
    row = next(line for line in out.splitlines() if "alias.delete" in line)
    assert row == "| `- alias.delete` | `old` | `111111111111` | a \\| b c |"
    assert markdown.code("a`b") == "`` a`b ``"
