"""A JSON document as block-style YAML text: the same data, for people who read YAML.

Pure and dependency-free (the render layer imports no YAML library).  Invariants:

* loading the output with any YAML 1.1 or 1.2 reader gives exactly the JSON data:
  every string is a double-quoted scalar in JSON syntax (valid YAML, so no value
  can turn into a boolean, a number, a date or null); a mapping key is written
  plain only when it cannot read as anything but that string;
* empty lists and mappings are ``[]`` and ``{}``; output ends with a newline.
"""

from __future__ import annotations

import json
import re
from typing import Any

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_RESERVED = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})


def dump(document: Any) -> str:
    """``document`` (JSON data: dict, list, str, int, float, bool, None) as YAML."""
    if isinstance(document, dict | list) and document:
        return "\n".join(_block(document, 0)) + "\n"
    return _scalar(document) + "\n"


def _key(key: str) -> str:
    if _PLAIN_KEY.match(key) and key.lower() not in _RESERVED:
        return key
    return json.dumps(key, ensure_ascii=False)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return json.dumps(str(value), ensure_ascii=False)


def _nested(value: Any) -> bool:
    return isinstance(value, dict | list) and bool(value)


def _block(node: Any, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if _nested(value):
                lines.append(f"{pad}{_key(str(key))}:")
                lines += _block(value, indent + 2)
            else:
                lines.append(f"{pad}{_key(str(key))}: {_scalar(value)}")
        return lines
    for item in node:
        if _nested(item):
            inner = _block(item, indent + 2)
            lines.append(f"{pad}- {inner[0].lstrip()}")
            lines += inner[1:]
        else:
            lines.append(f"{pad}- {_scalar(item)}")
    return lines
