"""``${VAR}`` and ``${VAR:-fallback}`` expansion in every string value of a document.

Rules (shell-like):

* ``${VAR}`` is replaced by the variable's value; an unset ``VAR`` is a problem
  naming it.  An empty value counts as set.
* ``${VAR:-fallback}`` uses ``fallback`` when ``VAR`` is unset *or empty*; the
  fallback itself is taken literally (no nested expansion).
* ``$${`` is a literal ``${``.  Any other ``${`` that does not form a valid
  reference is a problem.  A ``$`` not followed by ``{`` is left alone.
* Only values are expanded, never mapping keys.

Problem messages name variables, never their values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.desired.yamlsource import YPath

_TOKEN = re.compile(
    r"\$\$\{"  # escaped: a literal "${"
    r"|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<fallback>[^}]*))?\}"
    r"|\$\{"  # anything else after "${" is malformed
)


@dataclass
class Expansion:
    """The expanded data, the problems found, and which values came from variables."""

    data: Any
    problems: list[tuple[YPath, str]] = field(default_factory=list)
    from_environment: dict[YPath, tuple[str, ...]] = field(default_factory=dict)
    """Path of every value that used at least one variable -> the variable names."""
    unset: dict[YPath, tuple[str, ...]] = field(default_factory=dict)
    """Path of every value with a problem -> the unset variables (no fallback) it names;
    a path whose problems are not all unset variables (a malformed ``${``) is absent."""


def expand_string(text: str, environ: Mapping[str, str]) -> tuple[str, list[str], list[str]]:
    """Expand one string: ``(result, variables used, problems)``."""
    result, used, problems, _unset = _expand(text, environ)
    return result, used, problems


def _expand(text: str, environ: Mapping[str, str]
            ) -> tuple[str, list[str], list[str], list[str]]:
    """:func:`expand_string`, plus the unset variables among the problems."""
    used: list[str] = []
    problems: list[str] = []
    unset: list[str] = []

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "$${":
            return "${"
        name = match.group("name")
        if name is None:
            problems.append(
                "malformed variable reference: write ${NAME} or ${NAME:-fallback}, "
                "or $${ for a literal ${"
            )
            return token
        used.append(name)
        value = environ.get(name)
        fallback = match.group("fallback")
        if fallback is not None:
            return value if value else fallback
        if value is None:
            unset.append(name)
            problems.append(
                f"environment variable {name!r} is not set "
                f"(write ${{{name}:-fallback}} to give a default)"
            )
            return ""
        return value

    return _TOKEN.sub(replace, text), used, problems, unset


def expand(data: Any, environ: Mapping[str, str]) -> Expansion:
    """Expand every string value in ``data``.

    ``data`` is a plain tree from :mod:`reconciler.desired.yamlsource`."""
    result = Expansion(data=None)
    result.data = _walk(data, (), environ, result)
    return result


def _walk(node: Any, path: YPath, environ: Mapping[str, str], out: Expansion) -> Any:
    if isinstance(node, dict):
        return {k: _walk(v, (*path, k), environ, out) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk(v, (*path, i), environ, out) for i, v in enumerate(node)]
    if isinstance(node, str) and "$" in node:
        text, used, problems, unset = _expand(node, environ)
        if used:
            out.from_environment[path] = tuple(dict.fromkeys(used))
        if problems and len(unset) == len(problems):
            out.unset[path] = tuple(dict.fromkeys(unset))
        out.problems.extend((path, p) for p in problems)
        return text
    return node
