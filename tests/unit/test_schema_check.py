"""The schemas agree with the CLI, checked with a real validator (``check-jsonschema``).

* every ``examples/*.yaml`` and ``tests/corpus/good/*.yaml`` is valid for ``validate``
  and for the desired-state schema;
* the golden plans, saved plans, status documents and lock files satisfy their schemas;
* every file of ``tests/corpus/bad`` (all rejected by ``validate``, see
  test_bad_input.py) is rejected by the schema too, unless it is listed in
  :data:`NOT_EXPRESSIBLE` with the reason a JSON Schema cannot say it.

``check-jsonschema`` runs as users run it, ``python -m check_jsonschema
--schemafile ...``, on the committed schema files.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reconciler.desired.load import load_config
from reconciler.errors import ValidationFailed

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
BAD = ROOT / "tests" / "corpus" / "bad"
GOOD = sorted((ROOT / "tests" / "corpus" / "good").glob("*.yaml"))
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
GOLDEN = ROOT / "tests" / "golden" / "data"
CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"
ENVIRON = {
    "INCUS_SOCKET": "/run/incus/unix.socket",
    "INCUS_PROD_CERT": CERT, "INCUS_PROD_KEY": KEY,
    "INCUS_STAGING_CERT": CERT, "INCUS_STAGING_KEY": KEY,
    "PROD_URL": "https://incus-prod.example.com:8443", "PROD_CERT": CERT, "PROD_KEY": KEY,
}

HOSTILE: dict[str, str] = {
    "billion-laughs.yaml": "check-jsonschema's YAML reader expands the anchors for minutes",
    "integer-5000-digits.yaml": "check-jsonschema crashes (Python's int-from-string limit)",
    "nesting-flow-600.yaml": "check-jsonschema crashes (recursion limit)",
}
"""Hostile files not given to check-jsonschema: validate refuses them quickly
(test_bad_input.py), a YAML reader without bounds does not; no schema is involved."""

NOT_EXPRESSIBLE: dict[str, str] = {
    "certificate-dev-urandom.yaml": "a certificate path's target is a device: file contents",
    "certificate-dev-zero.yaml": "a certificate path's target is a device: file contents",
    "escaped-nul.yaml": "a NUL inside a string: Incus's text rules, not a JSON type",
    "escaped-surrogate.yaml": "a lone surrogate: not representable in the JSON view",
    "time-before-year-1.yaml": "a calendar-valid time before year 1: date arithmetic",
    "two-local-targets.yaml": "two targets reaching one store: a cross-reference",
    "two-targets-one-store.yaml": "two targets reaching one store: a cross-reference",
    "url-host-5000.yaml": "host name length limits (253/63) after IDNA encoding",
    "url-label-64.yaml": "host name label length after IDNA encoding",
    "version-float.yaml": "1.0 equals 1 in JSON Schema (numbers are compared by value)",
    "version-hex.yaml": "0x1 is the integer 1 once a YAML 1.1 reader has read it",
}
"""Files validate rejects and the schema cannot, and why."""


def check(schema: str, files: list[Path]) -> dict[str, Any]:
    """``check-jsonschema -o json --schemafile schemas/SCHEMA FILE...``: its report."""
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "-o", "json",
         "--schemafile", str(SCHEMAS / schema), *map(str, files)],
        capture_output=True, text=True, timeout=120, check=False)
    report: dict[str, Any] = json.loads(done.stdout)
    assert (done.returncode == 0) == (report["status"] == "ok"), done.stderr
    return report


def failed(report: dict[str, Any]) -> set[str]:
    names = [e["filename"] for e in report.get("errors", [])]
    names += [e["filename"] for e in report.get("parse_errors", [])]
    return {Path(n).name for n in names}


def test_examples_and_valid_fixtures_pass_validate_and_the_schema() -> None:
    files = EXAMPLES + GOOD
    assert len(GOOD) >= 2 and len(EXAMPLES) >= 6
    for path in files:
        assert load_config(path, ENVIRON).entries, path
    report = check("desired-state.schema.json", files)
    assert report["status"] == "ok", report


def test_every_cli_rejected_file_is_rejected_by_the_schema_where_expressible() -> None:
    files = sorted(BAD.glob("*.yaml"))
    for path in files:
        with pytest.raises(ValidationFailed):
            load_config(path, ENVIRON)
    files = [p for p in files if p.name not in HOSTILE]
    rejected = failed(check("desired-state.schema.json", files))
    expected = {p.name for p in files} - set(NOT_EXPRESSIBLE)
    assert expected - rejected == set(), "validate rejects these, the schema accepts them"
    assert set(NOT_EXPRESSIBLE) | set(HOSTILE) <= {p.name for p in BAD.glob("*.yaml")}
    assert rejected & set(NOT_EXPRESSIBLE) == set(), "now expressible: drop from the list"


@pytest.mark.parametrize("name", [
    "server-core-https-address.yaml", "remote-url-no-scheme.yaml", "target-url-http.yaml",
    "url-port-out-of-range.yaml", "url-port-not-a-number.yaml", "url-unclosed-ipv6.yaml",
    "client-cert-without-key.yaml", "pinned-auto-update.yaml", "expires-at-and-after.yaml",
    "project-names.yaml", "delete-unused-after-overflow.yaml",
])
def test_the_disagreements_that_were_fixed(name: str) -> None:
    """The schema used to accept these; validate never did."""
    report = check("desired-state.schema.json", [BAD / name])
    assert failed(report) == {name}
    assert report["errors"], "a schema error, not a parse error"


def _golden(suffix: str) -> list[Path]:
    found = sorted(GOLDEN.glob(f"*.{suffix}"))
    assert found, suffix
    return found


@pytest.mark.parametrize(("schema", "suffixes"), [
    ("plan.schema.json", ["plan.json", "saved.json", "show.json"]),
    ("status.schema.json", ["status.json"]),
    ("lock.schema.json", ["lock.yaml", "lock-upgraded.yaml"]),
])
def test_golden_documents_satisfy_their_schema(schema: str, suffixes: list[str]) -> None:
    files = [p for s in suffixes for p in _golden(s)]
    report = check(schema, files)
    assert report["status"] == "ok", report


def test_a_wrong_document_fails_check_jsonschema(tmp_path: Path) -> None:
    """The harness is not vacuous: a plan change without ``reason`` fails."""
    plan = json.loads(_golden("plan.json")[0].read_text("utf-8"))
    bad = tmp_path / "bad.plan.json"
    plan["changes"] = [{"action": "image.download", "target": "local", "project": "default"}]
    bad.write_text(json.dumps(plan), "utf-8")
    assert failed(check("plan.schema.json", [bad])) == {"bad.plan.json"}
