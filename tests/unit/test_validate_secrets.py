"""``validate`` needs no secrets: an unset ``${VAR}`` used only for credentials is a note.

Credentials are ``targets.NAME.client_cert``, ``client_key``, ``server_cert`` and
``remotes.NAME.certificate``.  ``validate`` exits 0 with one ``FILE:LINE:COLUMN:
note: ...`` line each on stderr; ``plan`` and ``apply`` still fail on the same file
(exit 1, the variable named), and a variable that is also used elsewhere stays an
error everywhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.desired.load import load_config
from reconciler.errors import Diagnostic, ValidationFailed

ROOT = Path(__file__).resolve().parents[2]
FULL = ROOT / "examples" / "full.yaml"
SECRETS = ("INCUS_PROD_CERT", "INCUS_PROD_KEY", "INCUS_PROD_SERVER_CERT",
           "INCUS_STAGING_CERT", "INCUS_STAGING_KEY")


@pytest.fixture
def no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SECRETS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("INCUS_SOCKET", "/nonexistent/incus/unix.socket")


def test_validate_full_example_without_secrets_is_valid_with_notes(no_secrets: None) -> None:
    result = CliRunner().invoke(cli, ["validate", "-f", str(FULL)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{FULL}: valid (4 images, 3 targets)\n"
    assert result.stderr.splitlines() == [
        f"{FULL}:23:18: note: targets.prod.client_cert: environment variable "
        "'INCUS_PROD_CERT' is not set: validate checks the file without credentials; plan "
        "and apply need it",
        f"{FULL}:24:17: note: targets.prod.client_key: environment variable "
        "'INCUS_PROD_KEY' is not set: validate checks the file without credentials; plan "
        "and apply need it",
    ]


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_plan_and_apply_still_fail_on_the_unset_secret(no_secrets: None, command: str) -> None:
    result = CliRunner().invoke(cli, [command, "-f", str(FULL)])
    assert result.exit_code == 1
    assert f"{FULL}:23:18: targets.prod.client_cert: environment variable 'INCUS_PROD_CERT' " \
        "is not set" in result.stderr
    assert "note:" not in result.stderr


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "images.yaml"
    path.write_text(text, encoding="utf-8")
    return path


REMOTE = "version: 1\nremotes:\n  internal:\n    url: https://10.0.0.5:8443\n    protocol: incus\n"


def test_a_remote_certificate_is_a_credential(tmp_path: Path) -> None:
    path = _write(tmp_path, REMOTE + "    certificate: ${REMOTE_CA}\n")
    notes: list[Diagnostic] = []
    config = load_config(path, {}, notes=notes)
    assert config.remotes["internal"].certificate is None
    assert [str(n) for n in notes] == [
        f"{path}:6:18: note: remotes.internal.certificate: environment variable 'REMOTE_CA' "
        "is not set: validate checks the file without credentials; plan and apply need it"]
    with pytest.raises(ValidationFailed):
        load_config(path, {})


def test_every_credential_field_defers(tmp_path: Path) -> None:
    path = _write(tmp_path, "version: 1\ntargets:\n  prod:\n    url: https://h:8443\n"
                  "    client_cert: ${C}\n    client_key: ${K}\n    server_cert: ${S}${T}\n")
    notes: list[Diagnostic] = []
    load_config(path, {}, notes=notes)
    assert [n.message.split(":")[1].strip() for n in notes] == [
        "targets.prod.client_cert", "targets.prod.client_key", "targets.prod.server_cert"]
    assert "'S' and 'T' are not set" in notes[2].message
    assert notes[2].message.endswith("plan and apply need them")


def test_a_variable_also_used_outside_credentials_stays_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "version: 1\ntargets:\n  prod:\n    url: https://${HOST}:8443\n"
                  "    client_cert: ${HOST}\n    client_key: ${K}\n")
    notes: list[Diagnostic] = []
    with pytest.raises(ValidationFailed) as failed:
        load_config(path, {}, notes=notes)
    messages = [d.message for d in failed.value.diagnostics]
    assert any(m.startswith("targets.prod.url: environment variable 'HOST'") for m in messages)
    assert any(m.startswith("targets.prod.client_cert: environment variable 'HOST'")
               for m in messages)
    assert [n.message.split(":")[1].strip() for n in notes] == ["targets.prod.client_key"]


def test_a_non_credential_unset_variable_is_an_error_for_validate(tmp_path: Path) -> None:
    path = _write(tmp_path, "version: 1\ntargets:\n  prod:\n    url: ${PROD_URL}\n")
    notes: list[Diagnostic] = []
    with pytest.raises(ValidationFailed):
        load_config(path, {}, notes=notes)
    assert notes == []


def test_a_malformed_reference_in_a_credential_stays_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, REMOTE + "    certificate: ${UNSET}${\n")
    notes: list[Diagnostic] = []
    with pytest.raises(ValidationFailed) as failed:
        load_config(path, {}, notes=notes)
    assert any("malformed variable reference" in d.message
               for d in failed.value.diagnostics)


def test_a_set_secret_is_read_and_checked_as_before(tmp_path: Path) -> None:
    path = _write(tmp_path, REMOTE + "    certificate: ${REMOTE_CA}\n")
    with pytest.raises(ValidationFailed, match="file not found"):
        load_config(path, {"REMOTE_CA": "missing.pem"}, notes=[])
