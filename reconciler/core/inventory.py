"""Ownership records: encode, decode, and update them with compare-and-swap.

An owner's inventory lives in the daemon's server config (``user.*`` keys are
accepted there; the default project's config rejects them).  Every write goes
through :func:`update_inventory`, which reads ``GET /1.0`` (or starts from the
config it last wrote, :class:`KnownConfig`), applies a pure change and writes with
``If-Match``, retrying when another writer got there first.

:func:`compare_and_swap` is the one such loop on the server config: the
inventory, the lease (``reconciler.apply.lease``) and the server settings an
apply writes all go through it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from reconciler import jsontext
from reconciler.errors import PreconditionFailed, StoreError
from reconciler.model.observed import INVENTORY_PREFIX, Inventory, TargetState, inventory_key
from reconciler.ports import ImageStore

MAX_ATTEMPTS = 10
"""How many times a compare-and-swap re-reads the server config before giving up."""

T = TypeVar("T")


@dataclass(frozen=True)
class Edit(Generic[T]):
    """What one look at the server config decided: the keys to write (None: write
    nothing, the config is already as wanted) and what the caller gets back."""

    changes: dict[str, str] | None
    result: T


class KnownConfig:
    """The server config one writer last read or wrote, with its ETag, or None.

    A compare-and-swap that is given one starts from it instead of re-reading
    ``GET /1.0``: the write carries its ETag (``If-Match``), so when anything changed
    the config since, the daemon refuses it (412) and the loop reads afresh.  Only
    a known ETag is used (an empty one would make the write unconditional).
    """

    def __init__(self, config: Mapping[str, str] | None = None, etag: str = "") -> None:
        self.value: tuple[dict[str, str], str] | None = (
            (dict(config), etag) if config is not None and etag else None)


def patched_config(config: Mapping[str, str], changes: Mapping[str, str]) -> dict[str, str]:
    """The server config after ``PATCH /1.0`` of ``changes`` (an empty value unsets)."""
    merged = {**config, **changes}
    return {k: v for k, v in merged.items() if v != ""}


def compare_and_swap(
    store: ImageStore,
    edit: Callable[[dict[str, str]], Edit[T]],
    *,
    gave_up: Callable[[], T],
    attempts: int = MAX_ATTEMPTS,
    known: KnownConfig | None = None,
) -> T:
    """Read ``GET /1.0``, let ``edit`` decide, and ``PATCH`` with its ETag (``If-Match``).

    ``edit`` is called afresh with each read, so a decision to write never rests on
    a config another writer has changed since.  When the write loses the race (412),
    the loop starts over; after ``attempts`` lost races it returns ``gave_up()``
    (which raises, for callers that must not carry on).  Any other error propagates.
    With ``known``, the first attempt starts from that config instead of a read, and
    ``known`` is left holding the config as written (when the store tells its new
    ETag), so a writer's next write needs no read either.
    """
    for _ in range(attempts):
        start = known.value if known is not None else None
        if known is not None:
            known.value = None  # used once; set again once confirmed
        config, etag = start if start is not None else store.get_server_config()
        step = edit(config)
        if step.changes is None:
            if known is not None and etag:
                known.value = (config, etag)
            return step.result
        try:
            new_etag = store.patch_server_config(step.changes, etag)
        except PreconditionFailed:
            continue
        if known is not None and new_etag:
            known.value = (patched_config(config, step.changes), new_etag)
        return step.result
    return gave_up()


def decode(owner: str, project: str, text: str) -> Inventory:
    """Parse a stored inventory.  An unreadable value is an empty record, never a crash."""
    try:
        data = jsontext.loads(text)
        return Inventory.model_validate({**data, "owner": owner, "project": project})
    except (ValueError, TypeError):
        return Inventory(owner=owner, project=project)


def encode(inventory: Inventory) -> str:
    """Compact, key-sorted JSON (stable, so an unchanged record is an unchanged value).

    Absent optional fields (a record without provenance) are left out, so records
    written without them keep the exact encoding older versions wrote.
    """
    data = inventory.model_dump(mode="json", exclude={"owner", "project"}, exclude_none=True)
    if not data.get("pending"):
        data.pop("pending", None)
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def parse_config(
    config: Mapping[str, str], project: str
) -> tuple[dict[str, str], dict[str, Inventory]]:
    """Split a server config into plain settings and every owner's inventory for ``project``."""
    plain: dict[str, str] = {}
    inventories: dict[str, Inventory] = {}
    suffix = "." + project
    for key, value in config.items():
        if not key.startswith(INVENTORY_PREFIX):
            plain[key] = value
            continue
        rest = key[len(INVENTORY_PREFIX):]
        if rest.endswith(suffix) and "." not in rest[: -len(suffix)]:
            owner = rest[: -len(suffix)]
            inventories[owner] = decode(owner, project, value)
    return plain, inventories


def with_inventories(state: TargetState) -> TargetState:
    """``state`` with the ownership records read out of its server config.

    A store reports its whole server config (``ImageStore.observe``); this is where
    the tool's own records in it (``user.incus-images.<owner>.<project>``) become
    ``inventories`` for the effective project, and leave ``server_config``.
    Idempotent: a state whose config holds no record is returned unchanged.
    """
    if not any(key.startswith(INVENTORY_PREFIX) for key in state.server_config):
        return state
    plain, inventories = parse_config(state.server_config, state.effective_project)
    return state.model_copy(update={"server_config": plain,
                                    "inventories": {**state.inventories, **inventories}})


def update_inventory(
    store: ImageStore, owner: str, project: str, change: Callable[[Inventory], Inventory],
    *, known: KnownConfig | None = None,
) -> Inventory:
    """Apply ``change`` to ``owner``'s stored inventory with compare-and-swap; return the
    result.  ``known``: see :func:`compare_and_swap`."""
    key = inventory_key(owner, project)

    def edit(config: dict[str, str]) -> Edit[Inventory]:
        current = decode(owner, project, config[key]) if key in config else Inventory(
            owner=owner, project=project
        )
        new = change(current)
        if new == current:
            return Edit(None, current)
        value = "" if not (new.images or new.server or new.pending) else encode(new)
        return Edit({key: value}, new)

    def gave_up() -> Inventory:
        raise StoreError(store.target, f"could not update the ownership record {key}: "
                         f"the server config kept changing ({MAX_ATTEMPTS} attempts)")

    return compare_and_swap(store, edit, gave_up=gave_up, known=known)
