"""Read YAML text into plain Python data plus the position of every key and value.

Invariants:

* The data tree holds only ``dict`` (with ``str`` keys), ``list``, ``str``, ``int``,
  ``float``, ``bool``, ``None``, ``datetime.date`` and ``datetime.datetime``: no
  ruamel types leak out (``ScalarBoolean`` would otherwise pass for an ``int``).
* A :data:`YPath` names a node as the tuple of mapping keys (``str``) and
  sequence indexes (``int``) leading to it; ``()`` is the root.
* Positions are 1-based ``(line, column)``.  Every lookup answers: a node
  without a recorded position (a key brought in by a ``<<`` merge, say) gets
  its nearest recorded ancestor's position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError

YPath = tuple[str | int, ...]
Pos = tuple[int, int]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_DUPLICATE_KEY = re.compile(r'found duplicate key "(.*?)" with value')


class YamlSyntaxError(Exception):
    """The text is not one YAML document; ``line``/``column`` are 1-based."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.message = message


@dataclass
class Positions:
    """Where each key and value of a document starts (1-based)."""

    keys: dict[YPath, Pos] = field(default_factory=dict)
    values: dict[YPath, Pos] = field(default_factory=dict)

    def key(self, path: YPath) -> Pos:
        """The position of the key naming ``path`` (for list items: the item)."""
        if path in self.keys:
            return self.keys[path]
        return self.value(path)

    def value(self, path: YPath) -> Pos:
        """The position of the value at ``path``, or of its nearest known ancestor."""
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            if prefix in self.values:
                return self.values[prefix]
            if prefix in self.keys:
                return self.keys[prefix]
        return (1, 1)


@dataclass
class Document:
    """A parsed file: plain ``data``, its ``positions``, and unsupported-tag problems."""

    data: Any
    positions: Positions
    problems: list[tuple[YPath, str]] = field(default_factory=list)


def render_path(path: YPath) -> str:
    """``("images", 0, "aliases")`` -> ``images[0].aliases``; odd keys are quoted."""
    out = ""
    for seg in path:
        if isinstance(seg, int):
            out += f"[{seg}]"
        elif _IDENT.match(seg):
            out += f".{seg}" if out else seg
        else:
            out += f"[{seg!r}]"
    return out


def parse(text: str) -> Document:
    """Parse one YAML document (round-trip loader, YAML 1.2).

    Raises :class:`YamlSyntaxError` at the problem mark for any syntax error,
    duplicate key or second document.
    """
    yaml = YAML(typ="rt")
    try:
        root = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        raise YamlSyntaxError(line, column, _syntax_message(exc)) from None
    doc = Document(data=None, positions=Positions())
    doc.positions.values[()] = _own_position(root)
    doc.data = _plain(root, (), doc)
    return doc


def _syntax_message(exc: MarkedYAMLError) -> str:
    problem = str(exc.problem or exc.context or "syntax error")
    if exc.problem and exc.context and str(exc.context).startswith("expected"):
        problem = f"{exc.context}, {exc.problem}"
    duplicate = _DUPLICATE_KEY.search(problem)
    if duplicate:
        # The parser's text quotes both values; they may be key material.
        return f"duplicate key {duplicate.group(1)!r}"
    return f"invalid YAML: {problem}"


def _own_position(node: Any) -> Pos:
    lc = getattr(node, "lc", None)
    if lc is not None and lc.line is not None:
        return (int(lc.line) + 1, int(lc.col) + 1)
    return (1, 1)


def _key_text(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    return str(key)


def _plain(node: Any, path: YPath, doc: Document) -> Any:
    if isinstance(node, CommentedMap):
        return _plain_map(node, path, doc)
    if isinstance(node, CommentedSeq):
        return _plain_seq(node, path, doc)
    return _plain_scalar(node, path, doc)


def _plain_map(node: CommentedMap, path: YPath, doc: Document) -> dict[str, Any]:
    own = doc.positions.value(path)
    out: dict[str, Any] = {}
    for raw_key, value in node.items():
        key = _key_text(raw_key)
        child = (*path, key)
        try:
            k_line, k_col, v_line, v_col = node.lc.data[raw_key]
            key_pos = (k_line + 1, k_col + 1)
            value_pos = (v_line + 1, v_col + 1)
        except (KeyError, TypeError, ValueError):
            key_pos = value_pos = own  # merged in from an anchor (<<)
        doc.positions.keys[child] = key_pos
        # A null value has no text of its own: ruamel marks the next token.
        doc.positions.values[child] = key_pos if value is None else value_pos
        out[key] = _plain(value, child, doc)
    return out


def _plain_seq(node: CommentedSeq, path: YPath, doc: Document) -> list[Any]:
    own = doc.positions.value(path)
    out: list[Any] = []
    for index, value in enumerate(node):
        child = (*path, index)
        try:
            line, col = node.lc.data[index]
            doc.positions.values[child] = (line + 1, col + 1)
        except (KeyError, TypeError, ValueError):
            doc.positions.values[child] = own
        out.append(_plain(value, child, doc))
    return out


def _plain_scalar(node: Any, path: YPath, doc: Document) -> Any:
    if isinstance(node, TaggedScalar):
        doc.problems.append((path, f"unsupported YAML tag {str(node.tag.value)!r}"))
        return str(node.value)
    if node is None or isinstance(node, bool):
        return node
    if isinstance(node, int):
        # ScalarBoolean (an anchored true/false) is an int subclass.
        if type(node).__name__ == "ScalarBoolean":
            return bool(node)
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, datetime):
        return datetime(
            node.year, node.month, node.day, node.hour, node.minute, node.second,
            node.microsecond, tzinfo=node.tzinfo,
        )
    if isinstance(node, date):
        return date(node.year, node.month, node.day)
    return node
