"""Small conventions users of other CLIs expect, and the packaging they rest on (issue 11).

* ``-V`` is ``--version``; the top-level help documents the environment variables the tool
  reads and shell completion; a usage error is one ``incus-images: error:`` line, exit 1.
* The version lives in one place (``reconciler.__version__``; pyproject.toml derives it).
* Every dependency bound in pyproject.toml is pinned, equal, in constraints/minimum.txt,
  the file scripts/test-minimums tests those bounds with.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from reconciler import __version__
from reconciler.cli import main

ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_dash_capital_v_is_version(capsys: pytest.CaptureFixture[str], flag: str) -> None:
    assert run(capsys, flag) == (0, f"incus-images {__version__}\n", "")


def test_help_documents_the_environment_and_completion(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    environment = out[out.index("Environment:"):]
    for name in ("INCUS_SOCKET", "INCUS_DIR", "GITHUB_STEP_SUMMARY", "NO_COLOR", "CI"):
        assert re.search(rf"^ +{name} +\S", environment, re.M), name
    assert re.search(r"NO_COLOR +when set \(any value\), no colour", environment)
    assert "_INCUS_IMAGES_COMPLETE=bash_source incus-images" in environment


@pytest.mark.parametrize(("argv", "says", "see"), [
    (["plan", "--bogus"], ["No such option", "--bogus", "--out"], "incus-images plan"),
    (["nope"], ["No such command", "nope"], "incus-images"),
    (["show"], ["Missing argument", "PLAN"], "incus-images show"),
])
def test_a_usage_error_is_one_line_exit_1(capsys: pytest.CaptureFixture[str], argv: list[str],
                                          says: list[str], see: str) -> None:
    """Click's own message (its wording varies by release), in one line."""
    code, out, err = run(capsys, *argv)
    assert (code, out, err.count("\n")) == (1, "", 1), err
    assert err.startswith("incus-images: error: ") and err.endswith(f" (see: {see} --help)\n")
    assert all(word in err for word in says), err


def test_bash_completion_completes_commands_and_options() -> None:
    env = {**os.environ, "_INCUS_IMAGES_COMPLETE": "bash_complete",
           "COMP_WORDS": "incus-images plan --detailed-e", "COMP_CWORD": "2",
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "reconciler"], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=False, timeout=60)
    assert (done.returncode, done.stdout.split()) == (0, ["plain,--detailed-exitcode"])


def test_the_version_lives_in_one_place() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    dynamic = project["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "reconciler.__version__"}


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_declared_bound_is_pinned_in_the_minimums() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = project["dependencies"]
    tests = project["optional-dependencies"]["test"]
    pins = dict(
        (_key(name), version)
        for name, version in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)",
                                        (ROOT / "constraints/minimum.txt").read_text(), re.M))
    for requirement in runtime + tests:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", requirement)
        assert match, f"{requirement}: declare a lower bound, and only that"
        name, low = match.groups()
        pin = pins.get(_key(name))
        if requirement in runtime:
            assert pin is not None, f"{name}: a runtime dependency with no minimum pinned"
        if pin is not None:
            assert pin.split(".")[:len(low.split("."))] == low.split("."), (name, low, pin)
            assert set(pin.split(".")[len(low.split(".")):]) <= {"0"}, (name, low, pin)


def test_the_license_is_the_apache_text_pyproject_declares() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert text.rstrip().endswith("limitations under the License.")
