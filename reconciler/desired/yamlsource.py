"""Read YAML text into plain Python data plus the position of every key and value.

Invariants:

* The data tree holds only ``dict`` (with ``str`` keys), ``list``, ``str``, ``int``,
  ``float``, ``bool``, ``None``, ``datetime.date`` and ``datetime.datetime``.
* A :data:`YPath` names a node as the tuple of mapping keys (``str``) and
  sequence indexes (``int``) leading to it; ``()`` is the root.
* Positions are 1-based ``(line, column)``.  Every lookup answers: a node
  without a recorded position gets its nearest recorded ancestor's position.
* Bounded, whatever the text: ruamel's scanner and parser turn the text into
  events (an iterative state machine), and this module builds the tree from
  them with an explicit stack.  Nesting deeper than :data:`MAX_DEPTH` or more
  than :data:`MAX_NODES` values stop the build with a located
  :class:`YamlSyntaxError`, so neither recursion nor memory can run away.
* Anchors and aliases (``&name``, ``*name``) are refused, each a located
  problem: they are the only way a small file expands into a huge tree (the
  "billion laughs"), and ``defaults`` already shares values between entries.
  Without aliases, ``<<`` is an ordinary (and unknown) key.
* Scalars follow the YAML 1.2 core schema, except that numbers must be written
  in decimal (``0x1``, ``0o7``, ``1_000`` stay strings) and whole numbers have
  at most :data:`MAX_INT_DIGITS` digits.  Plain ``2027-06-30`` and
  ``2027-06-30T12:00:00Z`` are a date and a datetime (as ruamel reads them); an
  impossible one (``2027-02-30``) is a located problem.
* Text may not contain characters YAML forbids (control characters, U+FFFE,
  ...), and no value or key may contain a control character, a lone surrogate or
  a non-character, even written as an escape (``"\\0"``): each is a located
  problem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)

from reconciler.desired.shown import clip, shown

YPath = tuple[str | int, ...]
Pos = tuple[int, int]

MAX_DEPTH = 64
"""Deepest nesting of mappings and lists accepted (a valid file needs 5)."""
MAX_NODES = 25_000
"""Most keys, values and items a file may hold (a typical entry holds 10 to 20)."""
MAX_INT_DIGITS = 18
"""Longest whole number accepted: fits a signed 64-bit integer."""
MAX_CHARACTER_PROBLEMS = 20
"""Forbidden characters reported one by one; the rest are counted in one more line."""

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_DUPLICATE_KEY = re.compile(r'found duplicate key "(.*?)" with value')
# Characters YAML does not allow in a stream (YAML 1.2, 5.1 "c-printable"): the
# complement of [\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff],
# written as a positive class (compiling the negated one costs 8 ms of every start-up).
_NOT_PRINTABLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]"
)
# Characters no value or key may hold, however written.
_NOT_IN_VALUES = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]"
)
_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_TRUE = re.compile(r"^(?:true|True|TRUE)$")
_FALSE = re.compile(r"^(?:false|False|FALSE)$")
_INT = re.compile(r"^[-+]?[0-9]+$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_TIMESTAMP = re.compile(
    r"^(?P<year>[0-9]{4})-(?P<month>[0-9]{1,2})-(?P<day>[0-9]{1,2})"
    r"(?:(?:[Tt]|[ \t]+)(?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})"
    r"(?:\.(?P<fraction>[0-9]*))?"
    r"(?:[ \t]*(?P<tz>Z|(?P<sign>[-+])(?P<tzh>[0-9]{1,2})(?::?(?P<tzm>[0-9]{2}))?))?)?$"
)
_DATE_ONLY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_CORE = "tag:yaml.org,2002:"


class YamlSyntaxError(Exception):
    """The text is not one acceptable YAML document: ``problems`` lists (line, column, message).

    ``line``/``column``/``message`` repeat the first problem; positions are 1-based.
    """

    def __init__(self, problems: list[tuple[int, int, str]]) -> None:
        self.problems = problems
        self.line, self.column, self.message = problems[0]
        super().__init__(self.message)


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


@dataclass(frozen=True)
class Problem:
    """A located problem found while reading; ``path`` (when known) is the value concerned."""

    pos: Pos
    message: str
    path: YPath | None = None


@dataclass
class Document:
    """A parsed file: plain ``data``, its ``positions``, and the problems found reading it."""

    data: Any
    positions: Positions
    problems: list[Problem] = field(default_factory=list)


def render_path(path: YPath) -> str:
    """``("images", 0, "aliases")`` -> ``images[0].aliases``; odd or long keys are quoted."""
    out = ""
    for seg in path:
        if isinstance(seg, int):
            out += f"[{seg}]"
        elif _IDENT.match(seg) and len(seg) <= 40:
            out += f".{seg}" if out else seg
        else:
            out += f"[{shown(seg, 40)}]"
    return out


def parse(text: str) -> Document:
    """Parse one YAML document.

    Raises :class:`YamlSyntaxError` for a character YAML forbids, a syntax error,
    a second document, or a limit exceeded (depth, node count); everything else
    (duplicate keys, anchors, tags, impossible dates) is a problem in the Document.
    """
    bad = _forbidden_characters(text)
    if bad:
        raise YamlSyntaxError(bad)
    builder = _Builder()
    try:
        for event in YAML(typ="safe", pure=True).parse(text):
            builder.feed(event)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        raise YamlSyntaxError([(line, column, _syntax_message(exc))]) from None
    except YAMLError as exc:  # unmarked: should not happen after the character check
        raise YamlSyntaxError([(1, 1, f"invalid YAML: {clip(str(exc))}")]) from None
    return builder.document


def _forbidden_characters(text: str) -> list[tuple[int, int, str]]:
    found: list[tuple[int, int, str]] = []
    total = 0
    for match in _NOT_PRINTABLE.finditer(text):
        total += 1
        if total <= MAX_CHARACTER_PROBLEMS + 1:
            line, column = _line_column(text, match.start())
            found.append((line, column, f"character U+{ord(match.group()):04X} is not "
                                        f"allowed in a YAML file"))
    if total > MAX_CHARACTER_PROBLEMS + 1:
        line, column, _ = found.pop()
        found.append((line, column, f"{total - MAX_CHARACTER_PROBLEMS} more characters that "
                                    f"YAML does not allow, the first of them here"))
    return found


def _line_column(text: str, index: int) -> Pos:
    """1-based position of ``text[index]``, counting line breaks as ruamel does."""
    line, start = 1, 0
    for match in _LINE_BREAK.finditer(text, 0, index):
        line, start = line + 1, match.end()
    return line, index - start + 1


def _syntax_message(exc: MarkedYAMLError) -> str:
    problem = str(exc.problem or exc.context or "syntax error")
    if exc.problem and exc.context and str(exc.context).startswith("expected"):
        problem = f"{exc.context}, {exc.problem}"
    duplicate = _DUPLICATE_KEY.search(problem)
    if duplicate:
        return f"duplicate key {shown(duplicate.group(1))}"
    return f"invalid YAML: {clip(problem)}"


def _pos(event: Event) -> Pos:
    mark = event.start_mark
    return (int(mark.line) + 1, int(mark.column) + 1)


class _Refused(Exception):
    """A scalar this reader does not accept; ``message`` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class _Frame:
    """An open mapping or sequence; ``path`` None means it is not kept (a key, a duplicate)."""

    container: dict[str, Any] | list[Any]
    path: YPath | None
    pos: Pos
    key: str | None = None  # the key whose value comes next (mappings)
    key_pos: Pos = (1, 1)
    key_kept: bool = True
    expecting_value: bool = False


@dataclass
class _Node:
    value: Any
    pos: Pos


class _Builder:
    """Builds the plain tree from parser events with an explicit stack (no recursion)."""

    def __init__(self) -> None:
        self.document = Document(data=None, positions=Positions())
        self.stack: list[_Frame] = []
        self.nodes = 0
        self.documents = 0

    def feed(self, event: Event) -> None:
        if isinstance(event, DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                raise YamlSyntaxError([(*_pos(event), "invalid YAML: expected a single document "
                                                      "in the stream, but found another document")])
            return
        if isinstance(event, ScalarEvent | CollectionStartEvent | AliasEvent):
            self.nodes += 1
            if self.nodes > MAX_NODES:
                raise YamlSyntaxError([(*_pos(event), f"the file holds more than {MAX_NODES} "
                                                      f"keys and values")])
        if isinstance(event, AliasEvent):
            self._alias(event)
        elif isinstance(event, ScalarEvent):
            self._scalar(event)
        elif isinstance(event, MappingStartEvent | SequenceStartEvent):
            self._start(event)
        elif isinstance(event, MappingEndEvent | SequenceEndEvent):
            frame = self.stack.pop()
            self._attach(_Node(frame.container, frame.pos))

    # -- where the next node goes ---------------------------------------------------------

    def _next_path(self) -> YPath | None:
        """The path of the node about to start; None if it will not be kept."""
        if not self.stack:
            return ()
        top = self.stack[-1]
        if top.path is None:
            return None
        if isinstance(top.container, list):
            return (*top.path, len(top.container))
        if not top.expecting_value or not top.key_kept or top.key is None:
            return None  # a key, or the value of a refused key
        return (*top.path, top.key)

    def _problem(self, pos: Pos, message: str, path: YPath | None) -> None:
        self.document.problems.append(Problem(pos, message, path))

    def _anchor(self, event: ScalarEvent | CollectionStartEvent, path: YPath | None) -> None:
        if event.anchor is not None:
            self._problem(_pos(event), f"YAML anchors (&{clip(str(event.anchor), 40)}) are not "
                                       f"supported: write the value out, or use defaults", path)

    # -- events -------------------------------------------------------------------------

    def _alias(self, event: AliasEvent) -> None:
        path = self._next_path()
        self._problem(_pos(event), f"YAML aliases (*{clip(str(event.anchor), 40)}) are not "
                                   f"supported: write the value out, or use defaults", path)
        self._attach(_Node(None, _pos(event)))

    def _start(self, event: MappingStartEvent | SequenceStartEvent) -> None:
        pos = _pos(event)
        if len(self.stack) >= MAX_DEPTH:
            raise YamlSyntaxError([(*pos, f"nesting deeper than {MAX_DEPTH} levels")])
        path = self._next_path()
        self._anchor(event, path)
        mapping = isinstance(event, MappingStartEvent)
        if event.tag is not None and event.tag != _CORE + ("map" if mapping else "seq"):
            self._problem(pos, f"unsupported YAML tag {shown(str(event.tag), 40)}", path)
        if path is not None:
            self.document.positions.values.setdefault(path, pos)
        container: dict[str, Any] | list[Any] = {} if mapping else []
        self.stack.append(_Frame(container, path, pos))

    def _scalar(self, event: ScalarEvent) -> None:
        path = self._next_path()
        self._anchor(event, path)
        pos = _pos(event)
        text = str(event.value)
        tag = None if event.tag is None else str(event.tag)
        plain = tag is None and bool(event.implicit[0]) and not event.style
        try:
            value = _construct(text, tag, plain)
        except _Refused as exc:
            self._problem(pos, exc.message, path)
            value = None
        if isinstance(value, str) and (bad := _NOT_IN_VALUES.search(value)):
            self._problem(pos, f"control character U+{ord(bad.group()):04X} is not allowed "
                               f"in a value or key", path)
        self._attach(_Node(value, pos))

    # -- placing a finished node ------------------------------------------------------------

    def _attach(self, node: _Node) -> None:
        if not self.stack:
            self.document.data = node.value
            self.document.positions.values[()] = node.pos
            return
        top = self.stack[-1]
        if isinstance(top.container, list):
            if top.path is not None:
                self.document.positions.values[(*top.path, len(top.container))] = node.pos
            top.container.append(node.value)
        elif not top.expecting_value:
            self._take_key(top, node)
        else:
            top.expecting_value = False
            if top.key is None or not top.key_kept:
                return
            top.container[top.key] = node.value
            if top.path is not None:
                child = (*top.path, top.key)
                self.document.positions.keys[child] = top.key_pos
                value_pos = top.key_pos if node.value is None else node.pos
                self.document.positions.values[child] = value_pos

    def _take_key(self, top: _Frame, node: _Node) -> None:
        assert isinstance(top.container, dict)
        top.expecting_value = True
        top.key_pos = node.pos
        if isinstance(node.value, dict | list):
            top.key, top.key_kept = None, False
            self._problem(node.pos, "a mapping key must be a plain value, not a "
                                    f"{'mapping' if isinstance(node.value, dict) else 'list'}",
                          top.path)
            return
        key = _key_text(node.value)
        top.key = key
        top.key_kept = key not in top.container
        if not top.key_kept:
            self._problem(node.pos, f"duplicate key {shown(key)}", None)


def _key_text(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    return str(key)


def _construct(text: str, tag: str | None, plain: bool) -> Any:
    """The Python value of one scalar; raises :class:`_Refused` for a value it refuses."""
    if tag is None:
        return _resolve_plain(text) if plain else text
    if tag == "!" or tag == _CORE + "str":
        return text
    if tag == _CORE + "null":
        return None
    if tag == _CORE + "bool":
        if _TRUE.match(text) or _FALSE.match(text):
            return bool(_TRUE.match(text))
    elif tag == _CORE + "int":
        if _INT.match(text):
            return _integer(text)
    elif tag == _CORE + "float":
        if _FLOAT.match(text) or _INT.match(text):
            return _float(text)
    elif tag == _CORE + "timestamp":
        if _TIMESTAMP.match(text):
            return _timestamp(text)
    else:
        raise _Refused(f"unsupported YAML tag {shown(tag, 40)}")
    raise _Refused(f"{shown(text)} is not a valid {tag[len(_CORE):]}")


def _float(text: str) -> float:
    return float(text.lower().replace(".inf", "inf").replace(".nan", "nan"))


def _resolve_plain(text: str) -> Any:
    if _NULL.match(text):
        return None
    if _TRUE.match(text):
        return True
    if _FALSE.match(text):
        return False
    if _INT.match(text):
        return _integer(text)
    if _FLOAT.match(text):
        return _float(text)
    if _TIMESTAMP.match(text):
        return _timestamp(text)
    return text


def _integer(text: str) -> int:
    digits = text.lstrip("+-")
    if len(digits.lstrip("0")) > MAX_INT_DIGITS:
        raise _Refused(f"number {shown(text, 20)} has more than {MAX_INT_DIGITS} digits")
    return int(text)


def _timestamp(text: str) -> date | datetime:
    match = _TIMESTAMP.match(text)
    assert match is not None
    g = match.groupdict()
    try:
        day = date(int(g["year"]), int(g["month"]), int(g["day"]))
        if g["hour"] is None:
            if not _DATE_ONLY.match(text):
                raise ValueError("write a date as YYYY-MM-DD")
            return day
        fraction = (g["fraction"] or "")[:6].ljust(6, "0")
        tz: timezone | None = None
        if g["tz"] == "Z":
            tz = UTC
        elif g["tz"]:
            if int(g["tzh"]) > 23 or int(g["tzm"] or 0) > 59:
                raise ValueError("a time zone offset is less than 24 hours")
            offset = timedelta(hours=int(g["tzh"]), minutes=int(g["tzm"] or 0))
            tz = timezone(-offset if g["sign"] == "-" else offset)
        return datetime(day.year, day.month, day.day, int(g["hour"]), int(g["minute"]),
                        int(g["second"]), int(fraction), tzinfo=tz)
    except ValueError as exc:
        raise _Refused(f"{shown(text)} is not a valid date or time ({clip(str(exc), 80)})"
                     ) from None
