"""Write the committed JSON Schemas: ``python -m reconciler.adapters.schemas [DIR]``.

The files under ``schemas/`` are generated (:mod:`reconciler.model.schemas`), never
edited by hand.  Output is ``json.dumps(indent=2, sort_keys=True)`` plus a trailing
newline, so regenerating an unchanged model changes no byte.
``tests/unit/test_schemas.py`` fails when a committed file is stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from reconciler.adapters.files import write_atomic
from reconciler.model.schemas import generated

SCHEMA_DIR = Path(__file__).resolve().parent.parent.parent / "schemas"


def render(schema: dict[str, Any]) -> str:
    """The exact text of a schema file."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Rewrite every generated schema file; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in generated().items():
        target = directory / name
        write_atomic(target, render(schema).encode("utf-8"), mode=None)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    directory = Path(args[0]) if args else SCHEMA_DIR
    for path in write(directory):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
