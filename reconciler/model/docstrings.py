"""Field descriptions from attribute docstrings, given to the models only when a JSON
Schema is made.

A field's docstring (the string literal under it) is its description in the
schemas.  pydantic's ``use_attribute_docstrings`` reads every model's source when
the model is defined, which cost about 0.2 s of every start-up (each command imports
the models); :func:`describe_fields` does the same reading once, on demand, for the
schema generator (:mod:`reconciler.model.schemas`).

Invariant: a field's description is its own ``Field(description=...)`` when it sets
one, else the docstring under it in the nearest class of its model's MRO that
declares it, cleaned as :func:`inspect.cleandoc` cleans it; nothing else changes.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from functools import cache

from pydantic import BaseModel


def attribute_docstrings(cls: type) -> dict[str, str]:
    """Field name -> the docstring right under its annotation in ``cls``'s own body."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    body = ast.parse(source).body[0]
    if not isinstance(body, ast.ClassDef):
        return {}
    found: dict[str, str] = {}
    for node, after in zip(body.body, body.body[1:], strict=False):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            found[node.target.id] = inspect.cleandoc(after.value.value)
    return found


def _models(root: type[BaseModel]) -> list[type[BaseModel]]:
    """``root`` and every subclass of it, parents before children."""
    out: list[type[BaseModel]] = []
    pending = [root]
    while pending:
        cls = pending.pop(0)
        if cls not in out:
            out.append(cls)
            pending.extend(cls.__subclasses__())
    return out


@cache
def describe_fields(*roots: type[BaseModel]) -> None:
    """Give every field of every subclass of ``roots`` its docstring as description,
    then rebuild the models so their JSON Schemas say it.  Once per process."""
    models = [m for root in roots for m in _models(root)]
    for model in models:
        docs: dict[str, str] = {}
        for cls in reversed(model.__mro__):
            if isinstance(cls, type) and issubclass(cls, BaseModel) and cls is not BaseModel:
                docs.update(attribute_docstrings(cls))
        for name, field in model.model_fields.items():
            if field.description is None and name in docs:
                field.description = docs[name]
    for _ in range(2):  # a model's schema embeds the schemas of the models it holds
        for model in models:
            model.model_rebuild(force=True)
