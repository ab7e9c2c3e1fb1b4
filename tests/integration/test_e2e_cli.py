"""The CLI contract, end to end: exit codes, streams, formats, confirmation, bad input.

Every test runs ``python -m reconciler`` as a subprocess against a real daemon and
a served simplestreams tree (``world``), the way CI runs it.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped, unused-ignore]
import pytest

from tests.support.constants import TINY
from tests.support.e2e import REPO, World

pytestmark = pytest.mark.integration

PLAN_SCHEMA = json.loads((REPO / "schemas" / "plan.schema.json").read_text())


def _no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr


def _snapshot(world: World) -> tuple[Any, ...]:
    """What an apply could change: images, aliases, the server config (with inventories)."""
    return world.images(), world.aliases(), world.daemon.config()


# -- exit codes, streams and formats ------------------------------------------------------------

def test_exit_codes_streams_and_formats(world: World) -> None:
    built = world.tree.add("tiny", "1.0", "20260101_0000")
    path = world.write(TINY)

    valid = world.cli("validate")
    assert valid.returncode == 0 and "valid" in valid.stdout and valid.stderr == ""

    plan = world.cli("plan")
    assert plan.returncode == 0, plan.stderr
    assert "image.download" in plan.stdout and "tiny" in plan.stdout
    assert plan.stderr == ""
    detailed = world.cli("plan", "--detailed-exitcode")
    assert detailed.returncode == 2, detailed.stderr
    assert detailed.stdout == plan.stdout

    as_json = world.cli("plan", "--format", "json", "--detailed-exitcode")
    assert as_json.returncode == 2 and as_json.stderr == ""
    doc = json.loads(as_json.stdout)
    jsonschema.validate(doc, PLAN_SCHEMA)
    assert doc["format_version"] == "1"
    assert [c["action"] for c in doc["changes"]] == ["image.download", "alias.create"]
    download = doc["changes"][0]
    assert download["fingerprint"] == built.fingerprint
    assert download["size"] == built.size == doc["summary"]["download_bytes"]
    assert doc["summary"]["actions"] == {"image.download": 1, "alias.create": 1}
    for change in doc["changes"]:
        assert {"action", "target", "project", "reason"} <= set(change)

    markdown = world.cli("plan", "--format", "markdown")
    assert markdown.returncode == 0 and markdown.stderr == ""
    rows = [line for line in markdown.stdout.splitlines() if line.startswith("|")]
    assert len(rows) >= 4, markdown.stdout  # header, separator, two changes
    assert re.fullmatch(r"\|(\s*:?-{3,}:?\s*\|)+", rows[1].replace(" ", "")), rows[1]
    assert "image.download" in markdown.stdout and built.fingerprint[:12] in markdown.stdout

    # No terminal, no --yes: refused with exit 1, the plan on stdout, nothing changed.
    before = _snapshot(world)
    refused = world.cli("apply", input="")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "image.download" in refused.stdout
    assert "--yes" in refused.stderr and "error" in refused.stderr
    _no_traceback(refused)
    assert _snapshot(world) == before
    assert world.served.count(f"images/{built.fingerprint}") == 0

    applied = world.cli("apply", "--yes", input="")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert world.aliases() == {"tiny": built.fingerprint}

    # Nothing to change: 0 everywhere, and apply needs neither a terminal nor --yes.
    for args in (("plan",), ("plan", "--detailed-exitcode"), ("apply",),
                 ("plan", "--detailed-exitcode", "--fail-on-warnings")):
        proc = world.cli(*args, input="")
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    empty = json.loads(world.cli("plan", "--format", "json").stdout)
    jsonschema.validate(empty, PLAN_SCHEMA)
    assert empty["changes"] == [] and empty["warnings"] == []
    assert "|" not in world.cli("plan", "--format", "markdown").stdout.split("\n")[0]

    # Errors: exit 1 on stderr, nothing on stdout, no traceback.
    bad_usage: list[tuple[str, ...]] = [
        ("plan", "--target", "nope"), ("apply", "--yes", "--target", "nope"),
        ("plan", "--no-such-flag"), ("plan", "--format", "yaml"), ("no-such-command",)]
    for bad in bad_usage:
        proc = world.cli(*bad, input="")
        assert proc.returncode == 1, (bad, proc.stdout, proc.stderr)
        assert proc.stdout == "" and proc.stderr.strip(), (bad, proc.stdout, proc.stderr)
        _no_traceback(proc)
    missing = world.cli("plan", file=path.with_name("missing.yaml"))
    assert missing.returncode == 1 and "missing.yaml" in missing.stderr
    _no_traceback(missing)


def test_unreachable_target_is_an_error_on_stderr(world: World) -> None:
    world.tree.add("tiny", "1.0", "20260101_0000")
    gone = world.dir / "gone" / "unix.socket"
    world.write(TINY, targets=f"targets:\n  local:\n    url: unix://{gone}")
    for args in (("plan", "--detailed-exitcode"), ("apply", "--yes")):
        proc = world.cli(*args)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert proc.stdout == ""
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "'local'" in lines[0] and str(gone) in lines[0], lines
        _no_traceback(proc)


# -- warnings -----------------------------------------------------------------------------------

def test_fail_on_warnings_after_the_stale_cache_upload(world: World) -> None:
    """The daemon's hour-old index lands the old build: the tool uploads the planned one,
    which then has no daemon-recorded source, and the plan warns about it."""
    old = world.import_by_hand("tiny", "1.0", "20260101_0000")  # the daemon caches the index
    world.daemon.api("DELETE", f"/1.0/images/{old}")
    new = world.tree.add("tiny", "1.0", "20260102_0000")
    world.write(TINY)

    applied = world.cli("apply", "--yes", "--format", "json")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    result = json.loads(applied.stdout)
    download = next(o for o in result["outcomes"]
                    if o["change"]["action"] == "image.download")
    assert download["via"] == "upload"
    assert set(world.images()) == {new.fingerprint}
    assert world.aliases() == {"tiny": new.fingerprint}
    assert world.images()[new.fingerprint].get("update_source") is None

    warned = world.cli("plan", "--format", "json", "--detailed-exitcode")
    assert warned.returncode == 0, warned.stdout + warned.stderr
    doc = json.loads(warned.stdout)
    jsonschema.validate(doc, PLAN_SCHEMA)
    assert doc["changes"] == []
    assert [(w["code"], w["target"], w["image"]) for w in doc["warnings"]] == [
        ("auto_update.no_source", "local", "test:tiny/1.0")]
    text = world.cli("plan")
    assert text.returncode == 0 and "auto_update.no_source" in text.stdout

    for args in (("plan", "--fail-on-warnings"),
                 ("plan", "--fail-on-warnings", "--detailed-exitcode"),
                 ("plan", "--fail-on-warnings", "--format", "json")):
        proc = world.cli(*args)
        assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
        assert "warning" in proc.stderr and proc.stdout, (args, proc.stdout, proc.stderr)
        _no_traceback(proc)


# -- bad input never reaches the store or the remote ---------------------------------------------

BASE = """\
version: 1
remotes:
  test:
    url: {url}
targets:
  local:
    url: unix://{socket}
"""

# Each case: a whole file (``#<`` marks the line the error must be reported on) and a
# word the message must contain.
BAD_INPUT: dict[str, tuple[str, str]] = {
    "yaml syntax error": (BASE + """\
images:
  - source: test:tiny/1.0
    aliases: [tiny
  - source: test:tiny/1.0  #<
""", "YAML"),
    "empty file": ("", "empty"),
    "unknown key": (BASE + """\
images:
  - source: test:tiny/1.0
    alias: [tiny]  #<
""", "alias"),
    "version 2": (BASE.replace("version: 1", "version: 2  #<") + """\
images:
  - source: test:tiny/1.0
""", "version"),
    "source not remote:alias": (BASE + """\
images:
  - source: tiny  #<
""", "source"),
    "unknown remote": (BASE + """\
images:
  - source: nope:tiny/1.0  #<
""", "unknown remote"),
    "unknown target": (BASE + """\
images:
  - source: test:tiny/1.0
    targets: [elsewhere]  #<
""", "unknown target"),
    "duplicate alias": (BASE + """\
images:
  - source: test:tiny/1.0
    aliases: [tiny]
  - source: test:tiny/1.0
    type: virtual-machine
    aliases: [tiny]  #<
""", "twice"),
    "fingerprint not 64 hex": (BASE + """\
images:
  - source: test:tiny/1.0
    fingerprint: abc123  #<
""", "fingerprint"),
    "pinned with auto_update": (BASE + """\
images:
  - source: test:tiny/1.0
    fingerprint: {fp}
    auto_update: true  #<
""", "auto_update"),
    "bad type": (BASE + """\
images:
  - source: test:tiny/1.0
    type: vm  #<
""", "type"),
    "bad protocol": (BASE.replace("    url: {url}\n", "    url: {url}\n    protocol: oci  #<\n")
                     + "images:\n  - source: test:tiny/1.0\n", "protocol"),
    "bad alias_conflicts": (BASE + """\
policy:
  alias_conflicts: maybe  #<
images:
  - source: test:tiny/1.0
""", "alias_conflicts"),
    "not a date": (BASE + """\
images:
  - source: test:tiny/1.0
    expires_at: next-tuesday  #<
""", "date"),
    "remote url ftp": (BASE.replace("    url: {url}\n", "    url: ftp://127.0.0.1/x  #<\n")
                       + "images:\n  - source: test:tiny/1.0\n", "ftp"),
    "target url http": (BASE.replace("    url: unix://{socket}\n",
                                     "    url: http://127.0.0.1:8443  #<\n")
                        + "images:\n  - source: test:tiny/1.0\n", "http"),
    "unset variable": (BASE + """\
images:
  - source: test:tiny/1.0
    properties:
      team: ${{II_TEST_SURELY_UNSET}}  #<
""", "II_TEST_SURELY_UNSET"),
}

_DIAGNOSTIC = re.compile(r"^(?P<file>.+):(?P<line>\d+):(?P<column>\d+): (?P<message>.+)$")


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_rejected_before_any_request(world: World, case: str) -> None:
    built = world.tree.add("tiny", "1.0", "20260101_0000")
    world.write(TINY)
    assert world.cli("apply", "--yes").returncode == 0  # something an apply could delete
    world.served.reset()
    before = _snapshot(world)

    template, word = BAD_INPUT[case]
    text = template.format(url=world.served.url, socket=world.daemon.socket,
                           fp=built.fingerprint)
    marked = [n for n, line in enumerate(text.splitlines(), 1) if "#<" in line]
    expected_line = marked[0] if marked else 1
    path = world.dir / "images.yaml"
    path.write_text(text)
    env = {"II_TEST_SURELY_UNSET": ""}
    env.pop("II_TEST_SURELY_UNSET")

    for args in (("validate",), ("plan",), ("plan", "--detailed-exitcode"),
                 ("apply", "--yes")):
        proc = world.cli(*args, env=env)
        assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
        _no_traceback(proc)
        assert proc.stdout == "", (args, proc.stdout)
        lines = proc.stderr.splitlines()
        assert lines, args
        found = [_DIAGNOSTIC.match(line) for line in lines]
        assert all(found), (args, lines)
        assert all(m is not None and m["file"] == str(path) for m in found), lines
        assert any(m is not None and int(m["line"]) == expected_line
                   and word.lower() in m["message"].lower() for m in found), (
            f"{case}: expected line {expected_line} mentioning {word!r}: {lines}")
    assert world.served.requests == []
    assert _snapshot(world) == before


def test_unset_variable_message_names_it_without_values(world: World) -> None:
    world.write("""
        images:
          - source: test:tiny/1.0
            properties: {team: "${II_TEAM}", secret: "${II_SET}"}
    """)
    proc = world.cli("validate", env={"II_SET": "s3cr3t-value"})
    assert proc.returncode == 1
    assert "II_TEAM" in proc.stderr and "s3cr3t-value" not in proc.stderr
    fallback = world.write("""
        images:
          - source: test:tiny/1.0
            properties: {team: "${II_TEAM:-web}"}
    """)
    assert world.cli("validate", file=fallback).returncode == 0


# -- interrupt ----------------------------------------------------------------------------------

def test_sigint_during_apply_exits_130(world: World) -> None:
    """SIGINT while apply waits for the confirmation: exit 130, nothing changed, no
    traceback.  The question is asked only on a terminal: a pseudo-terminal is stdin."""
    import pty

    world.tree.add("tiny", "1.0", "20260101_0000")
    path = world.write(TINY)
    before = _snapshot(world)
    main, child = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", "-f", str(path)],
        cwd=world.dir, env=env, stdin=child, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True)
    os.close(child)
    assert proc.stderr is not None
    try:
        seen = ""
        deadline = time.monotonic() + 60
        while "[y/N]" not in seen and time.monotonic() < deadline and proc.poll() is None:
            ready, _, _ = select.select([proc.stderr], [], [], 0.5)
            if ready:
                seen += os.read(proc.stderr.fileno(), 4096).decode()
        assert "[y/N]" in seen, seen
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        err = seen + err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(main)
    assert proc.returncode == 130, (out, err)
    assert "interrupted" in err and "Traceback" not in err
    assert _snapshot(world) == before


def test_sigint_during_a_download_stops_before_the_next_change(world: World) -> None:
    """Ctrl-C while the daemon downloads: the download finishes, nothing after it starts
    (the old build and its alias stay), exit 130; the next apply converges."""
    old = world.tree.add("tiny", "1.0", "20260101_0000")
    path = world.write(TINY)
    assert world.cli("apply", "--yes").returncode == 0
    new = world.tree.add("tiny", "1.0", "20260102_0000")
    world.daemon.flush_stream_cache(world.served.url)
    world.served.reset()
    world.served.file_delay = 0.5
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", "--yes", "-f", str(path)],
        cwd=world.dir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not any(p.startswith("/images/") for p in list(world.served.requests)):
            assert proc.poll() is None and time.monotonic() < deadline, "no download started"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, (out, err)
    assert "interrupted" in err and "Traceback" not in err, err
    # The old build is still there, and still has its alias.
    assert world.aliases() == {"tiny": old.fingerprint}, err
    assert old.fingerprint in world.images()

    world.served.file_delay = 0.0
    again = world.cli("apply", "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    assert set(world.images()) == {new.fingerprint}
    assert world.aliases() == {"tiny": new.fingerprint}
    assert world.cli("plan", "--detailed-exitcode").returncode == 0


def test_confirmation_on_a_terminal(world: World) -> None:
    """On a terminal apply asks; anything but y/yes cancels (exit 1), y applies."""
    import pty

    built = world.tree.add("tiny", "1.0", "20260101_0000")
    path = world.write(TINY)

    def run(answer: bytes) -> tuple[int, str, str]:
        main, child = pty.openpty()
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "apply", "-f", str(path)],
            cwd=world.dir, env=env, stdin=child, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, start_new_session=True)
        os.close(child)
        try:
            os.write(main, answer)
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(main)
        return proc.returncode, out, err

    code, out, err = run(b"n\n")
    assert code == 1 and "cancel" in err, (out, err)
    assert world.images() == {}
    code, out, err = run(b"y\n")
    assert code == 0, (out, err)
    assert world.aliases() == {"tiny": built.fingerprint}
    assert Path(path).exists()
