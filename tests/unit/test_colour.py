"""Colour: on a terminal only, off for --no-color, NO_COLOR, TERM=dumb; never in JSON,
markdown or files.  (Real processes under a pseudo-terminal: tests/integration/
test_e2e_progress.py.)"""

from __future__ import annotations

import io
import json
import re
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.render import colour
from tests.unit.test_cli import World
from tests.unit.test_cli import w as w  # the fixture

SGR = re.compile(r"\x1b\[[0-9;]*m")

PLAN_TEXT = """\
Warnings:
  ! local: images:x: something [code]

Notes (not checked):
  - a note, not a removal

Target local (project default):
  + image.download  images:debian/12 4f3a2b1c9d8e (1.0 kB)  # declared, not in store
  ~ image.update    images:debian/12 4f3a2b1c9d8e  # declared fields differ
      auto_update: false -> true
  - alias.delete    old (on 111111111111)  # not declared
  left alone: 333333333333 (nobody, cached)

Plan: 1 to download, 1 to update, 1 alias change (1.0 kB to download).
Apply failed: 0 done, 1 failed in 0s.
  failed:  local: image.download images:debian/12 4f3a2b1c9d8e: reset
"""


def test_paint_colours_markers_warnings_and_verdicts_and_changes_no_character() -> None:
    painted = colour.paint(PLAN_TEXT)
    assert SGR.sub("", painted) == PLAN_TEXT
    assert "\x1b[32m+ image.download\x1b[0m" in painted
    assert "\x1b[33m~ image.update\x1b[0m" in painted
    assert "\x1b[31m- alias.delete\x1b[0m" in painted
    assert "\x1b[33m! local: images:x: something [code]\x1b[0m" in painted
    assert "\x1b[1;31mApply failed\x1b[0m" in painted
    assert "\x1b[31mfailed\x1b[0m:" in painted
    assert "  - a note, not a removal\n" in painted  # a note's dash is not a removal
    assert "  left alone: 333333333333 (nobody, cached)\n" in painted


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_on_tty(w: World, monkeypatch: pytest.MonkeyPatch, *argv: str,
               env: dict[str, str] | None = None) -> tuple[int, str]:
    """The CLI with a terminal as stdout and the services' environment plus ``env``."""
    out = Tty()
    monkeypatch.setattr(sys, "stdout", out)
    services = w.services()
    environ = {**services.environ, "TERM": "xterm-256color", **(env or {})}
    code = main(list(argv), services=replace(services, environ=environ))
    return code, out.getvalue()


def test_plan_on_a_terminal_is_coloured(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    w.changed()
    code, out = run_on_tty(w, monkeypatch, "plan")
    assert code == 0
    assert "\x1b[32m+ image.download\x1b[0m" in out


@pytest.mark.parametrize(("argv", "env"), [
    (("--no-color", "plan"), {}),
    (("plan", "--no-color"), {}),
    (("plan",), {"NO_COLOR": "1"}),
    (("plan",), {"NO_COLOR": "false"}),  # any non-empty value
    (("plan",), {"TERM": "dumb"}),
    (("plan", "--format", "json"), {}),
    (("plan", "--format", "markdown"), {}),
])
def test_no_colour_when_asked_or_not_text(
        w: World, monkeypatch: pytest.MonkeyPatch, argv: tuple[str, ...],
        env: dict[str, str]) -> None:
    w.changed()
    code, out = run_on_tty(w, monkeypatch, *argv, env=env)
    assert code == 0 and "image.download" in out
    assert "\x1b" not in out


def test_colour_never_reaches_a_saved_plan_or_the_step_summary(
        w: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    w.changed()
    summary = tmp_path / "summary.md"
    code, out = run_on_tty(w, monkeypatch, "plan", "--out", "saved.json",
                           env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert code == 0 and "\x1b[32m" in out   # the terminal got colour...
    saved = (w.root / "saved.json").read_text()
    assert "\x1b" not in saved and json.loads(saved)["changes"]
    assert "\x1b" not in summary.read_text()  # ...the files did not
    code, shown = run_on_tty(w, monkeypatch, "show", "saved.json", "--format", "json")
    assert code == 0 and "\x1b" not in shown


def test_apply_on_a_terminal_colours_the_plan_and_the_summary(
        w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    w.changed()
    code, out = run_on_tty(w, monkeypatch, "apply", "--yes")
    assert code == 0
    assert "\x1b[32m+ image.download\x1b[0m" in out
    assert "\x1b[1;32mApply complete\x1b[0m: 1 done in 0s." in out
    assert SGR.sub("", out).count("Plan: 1 to download") == 1
