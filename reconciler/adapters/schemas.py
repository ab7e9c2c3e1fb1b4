"""The JSON Schema files: the committed ones, the shipped ones, and writing both.

``python -m reconciler.adapters.schemas`` regenerates them from the models
(:mod:`reconciler.model.schemas`); they are never edited by hand.  Two identical
copies exist: ``schemas/`` at the top of the repository (what the contract names
and what ``examples/*.yaml`` point their modeline at) and ``reconciler/schemas/``,
package data shipped in the wheel, which ``incus-images schema NAME`` prints.
Output is ``json.dumps(indent=2, sort_keys=True)`` plus a trailing newline, so
regenerating an unchanged model changes no byte.  ``tests/unit/test_schemas.py``
and ``tests/unit/test_schema_docs.py`` fail when either copy is stale.
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from reconciler.adapters.files import write_atomic
from reconciler.errors import IncusImagesError
from reconciler.model.schemas import NAMES, file_name, generated

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "schemas"
SCHEMA_DIR = PACKAGE_DIR.parent.parent / "schemas"


def render(schema: dict[str, Any]) -> str:
    """The exact text of a schema file."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Rewrite every generated schema file in ``directory``; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in generated().items():
        target = directory / name
        write_atomic(target, render(schema).encode("utf-8"), mode=None)
        written.append(target)
    return written


def packaged(name: str) -> str:
    """The text of the shipped schema ``name`` (one of :data:`NAMES`)."""
    if name not in NAMES:
        raise IncusImagesError(f"unknown schema {name!r} (one of: {', '.join(NAMES)})")
    shipped = resources.files("reconciler").joinpath("schemas", file_name(name))
    try:
        return shipped.read_text(encoding="utf-8")
    except OSError as exc:
        raise IncusImagesError(f"the installed package lacks {file_name(name)}: "
                               f"{exc.strerror or exc}") from None


def main(argv: list[str] | None = None) -> int:
    """Write the schemas to DIR, or to both copies when no DIR is given."""
    args = sys.argv[1:] if argv is None else argv
    directories = [Path(args[0])] if args else [SCHEMA_DIR, PACKAGE_DIR]
    for directory in directories:
        for path in write(directory):
            print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
