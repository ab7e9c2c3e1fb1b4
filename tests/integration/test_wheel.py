"""The built wheel ships the JSON Schemas ``incus-images schema NAME`` prints.

Builds the wheel as a user would (``pip wheel . --no-deps``, with build isolation,
so pip fetches the build backend pyproject.toml asks for: this needs the package
index or pip's cache, which is why it is not a unit test).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from reconciler.model import schemas

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def test_the_wheel_ships_every_schema(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "__pycache__", "*.egg-info", "build", "dist", "tests",
        ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis"))
    out = tmp_path / "wheel"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "-w", str(out), "--no-deps", "-q"],
        capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    (wheel,) = out.glob("incus_images-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        for name in schemas.NAMES:
            file = schemas.file_name(name)
            inside = zf.read(f"reconciler/schemas/{file}").decode("utf-8")
            assert inside == (ROOT / "schemas" / file).read_text(encoding="utf-8")
