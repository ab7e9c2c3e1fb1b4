"""Check the shape of the (expanded) data with :class:`DesiredStateFile`, in human words.

Validation is strict (no ``"yes"`` -> ``True`` coercion): a YAML file has real
booleans and numbers, and the JSON schema editors check against says the same.

Every pydantic error is mapped back to a YAML path and a message:

* unknown keys point at the key and suggest the closest known one
  (``unknown key 'fingerprnt' in images[0] (did you mean 'fingerprint'?)``);
* missing keys point at the mapping that lacks them;
* everything else points at the offending value.

Union branches (an alias is a name *or* a mapping) are collapsed into one
message about the value actually written.  A few fields are left to
:mod:`reconciler.desired.validate`, which says more than a pattern can:
``source`` and ``fingerprint`` patterns, alias name lengths and characters,
``expires_at``.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from reconciler.desired.shown import shown
from reconciler.desired.suggest import did_you_mean
from reconciler.desired.yamlsource import YPath, render_path
from reconciler.model.desired import DesiredStateFile

Where = Literal["key", "value"]

_DAYS_HINT = "a number of days such as 30d"
_PATTERN_HINTS: dict[str, str] = {
    "owner": "1 to 63 characters of a-z, 0-9 and '-', starting with a letter or digit",
    "expires_after": _DAYS_HINT,
    "delete_unused_after": _DAYS_HINT,
}
_BRANCH_NAMES: dict[str, str] = {
    "str": "a string",
    "constrained-str": "a name",
    "int": "a number",
    "bool": "true or false",
    "AliasFile": "a mapping {name, description}",
    "CachedPolicyFile": "a mapping {delete_unused_after: 30d}",
}
_TYPE_NAMES: dict[str, str] = {
    "string_type": "a string",
    "bool_type": "true or false",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
}


@dataclass(frozen=True)
class ShapeProblem:
    path: YPath
    where: Where
    message: str


@dataclass(frozen=True)
class _Located:
    error: ErrorDetails
    path: YPath  # deepest node of the data that the error is about
    branch: tuple[str, ...]  # union branch tags met on the way
    site: YPath  # where the first union branch tag was met (== path if none)
    missing: str | None  # the missing key, for "missing" errors


def check_shape(data: Any) -> tuple[DesiredStateFile | None, list[ShapeProblem]]:
    """Validate ``data``; the model when valid, else None, and every problem found."""
    try:
        return DesiredStateFile.model_validate(data, strict=True), []
    except ValidationError as exc:
        return None, _messages([_locate(e, data) for e in exc.errors()], data)


def describe(value: Any) -> str:
    """What a value is, for 'must be X, not Y' messages."""
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, date):
        return "a date"
    return type(value).__name__


def _locate(error: ErrorDetails, data: Any) -> _Located:
    loc = error["loc"]
    node = data
    path: list[str | int] = []
    branch: list[str] = []
    site: YPath | None = None
    missing: str | None = None
    for i, seg in enumerate(loc):
        if _has_child(node, seg):
            path.append(seg)
            node = node[seg]
        elif error["type"] == "missing" and i == len(loc) - 1:
            missing = str(seg)
        else:
            if site is None:
                site = tuple(path)
            branch.append(str(seg))
    here = tuple(path)
    return _Located(error, here, tuple(branch), here if site is None else site, missing)


def _has_child(node: Any, seg: str | int) -> bool:
    if isinstance(node, dict):
        return isinstance(seg, str) and seg in node
    return isinstance(node, list) and isinstance(seg, int) and 0 <= seg < len(node)


def _left_to_semantics(p: YPath, kind: str) -> bool:
    """Errors that :mod:`reconciler.desired.validate` reports in its own words."""
    if len(p) >= 3 and p[0] == "images" and p[2] == "expires_at":
        return True
    if len(p) == 3 and p[0] == "images" and p[2] in ("source", "fingerprint"):
        return kind == "string_pattern_mismatch"
    in_alias = len(p) >= 4 and p[0] == "images" and p[2] == "aliases"
    return in_alias and kind in ("string_too_long", "string_too_short", "string_unicode")


def _value_at(data: Any, path: YPath) -> Any:
    node = data
    for seg in path:
        node = node[seg]
    return node


def _messages(located: list[_Located], data: Any) -> list[ShapeProblem]:
    plain = [lo for lo in located if not lo.branch]
    unions: dict[YPath, list[_Located]] = {}
    for lo in located:
        if lo.branch:
            unions.setdefault(lo.site, []).append(lo)
    out = [
        _plain_message(lo, data)
        for lo in plain
        if not _left_to_semantics(lo.path, lo.error["type"])
    ]
    for site, group in unions.items():
        if _left_to_semantics(site, "union"):
            continue
        out.extend(_union_messages(site, group, data))
    return out


def _union_messages(site: YPath, group: list[_Located], data: Any) -> list[ShapeProblem]:
    value = _value_at(data, site)
    first = [lo.branch[0] for lo in group]
    if isinstance(value, dict):
        chosen = [lo for lo, tag in zip(group, first, strict=True) if tag[:1].isupper()]
    elif isinstance(value, str):
        chosen = [lo for lo, tag in zip(group, first, strict=True) if tag.endswith("str")]
    else:
        chosen = []
    if chosen and all(lo.error["type"] not in ("model_type", "dict_type") for lo in chosen):
        return [
            _plain_message(lo, data)
            for lo in chosen
            if not _left_to_semantics(lo.path, lo.error["type"])
        ]
    names = [_BRANCH_NAMES.get(t, _literal_name(t)) for t in dict.fromkeys(first)]
    choices = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    message = f"{render_path(site)} must be {choices}, not {describe(value)}"
    return [ShapeProblem(site, "value", message)]


def _literal_name(tag: str) -> str:
    # pydantic names a Literal branch "literal['keep']"
    if tag.startswith("literal[") and tag.endswith("]"):
        return tag[len("literal[") : -1].replace("'", "")
    return tag


def _container_name(path: YPath) -> str:
    return f"in {render_path(path)}" if path else "at top level"


def _plain_message(lo: _Located, data: Any) -> ShapeProblem:
    error, path = lo.error, lo.path
    kind = error["type"]
    name = render_path(path)
    if kind == "extra_forbidden":
        key = shown(path[-1])
        hint = did_you_mean(str(path[-1]), known_keys(path[:-1]))
        return ShapeProblem(path, "key",
                            f"unknown key {key} {_container_name(path[:-1])}{hint}")
    if kind == "missing":
        return ShapeProblem(path, "value", f"missing key {lo.missing!r} {_container_name(path)}")
    value = _value_at(data, path)
    if kind == "literal_error":
        expected = str((error.get("ctx") or {}).get("expected", "")).replace("'", "")
        options = [o.strip() for o in expected.replace(" or ", ",").split(",") if o.strip()]
        if len(options) == 1:
            return ShapeProblem(path, "value", f"{name} must be {options[0]}, not {shown(value)}")
        return ShapeProblem(
            path, "value", f"{name} must be one of {', '.join(options)}, not {shown(value)}"
        )
    if kind in _TYPE_NAMES:
        hint = " (quote it)" if kind == "string_type" and isinstance(value, int | float) else ""
        return ShapeProblem(
            path, "value", f"{name} must be {_TYPE_NAMES[kind]}, not {describe(value)}{hint}"
        )
    if kind == "string_pattern_mismatch":
        field_name = str(path[-1]) if path else ""
        wanted = _PATTERN_HINTS.get(field_name)
        if wanted is not None:
            return ShapeProblem(path, "value", f"{name} must be {wanted}, not {shown(value)}")
    text = error["msg"]
    return ShapeProblem(path, "value", f"{name}: {text[:1].lower()}{text[1:]}")


def known_keys(path: YPath) -> list[str]:
    """The keys the mapping at ``path`` may hold, from :class:`DesiredStateFile`
    (none when ``path`` is not a mapping of the model)."""
    model: Any = DesiredStateFile
    for seg in path:
        model = _child(model, seg)
        if model is None:
            return []
    return list(model.model_fields) if _is_model(model) else []


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _child(tp: Any, seg: str | int) -> Any:
    """The type one step below ``tp`` along ``seg`` (a field, a mapping value, a list item)."""
    if _is_model(tp):
        field = tp.model_fields.get(seg) if isinstance(seg, str) else None
        return None if field is None else _unwrap(field.annotation, seg)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is dict and isinstance(seg, str) and len(args) == 2:
        return _unwrap(args[1], seg)
    if origin is list and isinstance(seg, int) and args:
        return _unwrap(args[0], seg)
    return None


def _unwrap(tp: Any, _seg: str | int) -> Any:
    """A union's one model, mapping or list member (``X | None``, ``str | AliasFile``)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(tp)
                   if _is_model(a) or typing.get_origin(a) in (dict, list)]
        return members[0] if len(members) == 1 else None
    return tp
