"""Write the server settings a ``server.update`` change sets (``images.*`` keys).

Invariant: each key is written with compare-and-swap on the server config
(:func:`reconciler.core.inventory.compare_and_swap`), so a concurrent writer's
change to any other key is never lost; a key already at its value is not
written; a config that keeps changing gives up after ``MAX_ATTEMPTS`` tries
with an :class:`~reconciler.errors.ApplyError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.core.inventory import MAX_ATTEMPTS, Edit, compare_and_swap
from reconciler.errors import ApplyError
from reconciler.model.plan import FieldChange
from reconciler.ports import ImageStore


def set_server_keys(target: str, store: ImageStore, fields: Mapping[str, FieldChange]) -> None:
    """Set each of ``fields`` to its ``to`` value, key by key, in order."""
    for key, fc in fields.items():
        set_server_key(target, store, key, fc.to)


def set_server_key(target: str, store: ImageStore, key: str, value: Any) -> None:
    """Set server config ``key`` to ``value`` (written as text) unless it holds it already."""

    def edit(config: dict[str, str]) -> Edit[None]:
        if config.get(key) == value:
            return Edit(None, None)
        return Edit({key: str(value)}, None)

    def gave_up() -> None:
        raise ApplyError(f"target {target!r}: could not set {key}: the server "
                         f"config kept changing ({MAX_ATTEMPTS} attempts)")

    compare_and_swap(store, edit, gave_up=gave_up)
