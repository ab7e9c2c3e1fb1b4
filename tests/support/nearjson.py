"""Hypothesis strategies for answers from outside: real shapes with a few parts gone wrong.

``near(value)`` draws ``value`` with up to three changes, each at a random place of it
(the whole value included): that part replaced by arbitrary JSON, or removed (an
object's key, a list's item).  Most draws stay close enough to a real answer to reach
deep into the code that reads it; shrinking leads to the one change that matters.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=12)
"""Any JSON value (small)."""

Path = tuple[str | int, ...]
_REMOVE = object()


def near(value: Any) -> st.SearchStrategy[Any]:
    """``value`` with up to three parts replaced by arbitrary JSON or removed."""
    places = list(_places(value))
    change = st.tuples(st.sampled_from(places), st.one_of(JSON, st.just(_REMOVE)))
    return st.lists(change, max_size=3).map(lambda changes: _changed(value, changes))


def _places(value: Any, path: Path = ()) -> Iterator[Path]:
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _places(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _places(item, (*path, index))


def _changed(value: Any, changes: list[tuple[Path, Any]]) -> Any:
    result = copy.deepcopy(value)
    for path, new in changes:
        if not path:
            result = None if new is _REMOVE else new
            continue
        parent = result
        for step in path[:-1]:
            if not _holds(parent, step):  # an earlier change cut the way: skip this one
                break
            parent = parent[step]
        else:
            if _holds(parent, path[-1]):
                if new is _REMOVE:
                    del parent[path[-1]]
                else:
                    parent[path[-1]] = new
    return result


def _holds(parent: Any, step: str | int) -> bool:
    """Whether ``parent[step]`` is there (an object's key, a list's index)."""
    if isinstance(parent, dict):
        return step in parent
    return isinstance(parent, list) and isinstance(step, int) and step < len(parent)
