"""The plan's changes, typed per action: every field an action needs is required.

:class:`~reconciler.model.plan.Change` stays the wire format: it is what the
plan's JSON (and ``schemas/plan.schema.json``) is made of, one flat record whose
fields are optional because each action uses a few of them.  The classes here are
what code builds and reads: one per action, holding exactly that action's
fields, so nobody has to write ``c.alias or ""`` or assert a field is there.

Invariants:
- :meth:`wire` and :func:`typed` are the only conversions.  ``typed(x.wire()) == x``
  for every typed change ``x``, and ``typed(c).wire() == c`` for every wire change
  ``c`` the planner makes (tests/unit/test_typed_changes.py checks both).
- :func:`typed` refuses (:class:`~reconciler.errors.PlanError`) a wire change that
  lacks a field its action requires, so a saved plan either reads as typed changes
  or is refused.  A field the action does not use is left out of the typed change
  (the plan schema allows it; no plan this tool makes has one).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ValidationError

from reconciler.errors import PlanError
from reconciler.model.base import Frozen
from reconciler.model.observed import RecordedImage
from reconciler.model.plan import Action, Change, FieldChange, PullSource, Writable


class _Typed(Frozen):
    """What every change has: the target it is on, its effective project, and why."""

    action: ClassVar[Action]

    target: str
    project: str
    reason: str

    def _wire_fields(self) -> dict[str, Any]:
        """The action's own fields, as :class:`Change` names them (None: left out)."""
        raise NotImplementedError

    def wire(self) -> Change:
        """This change as the plan's JSON holds it."""
        return Change(action=self.action, target=self.target, project=self.project,
                      reason=self.reason, **self._wire_fields())


class ServerUpdate(_Typed):
    """``server.update``: server config keys to set (``to`` None: unset)."""

    action: ClassVar[Action] = Action.SERVER_UPDATE
    fields: dict[str, FieldChange]

    def _wire_fields(self) -> dict[str, Any]:
        return {"fields": self.fields}


class ImageDownload(_Typed):
    """``image.download``: land build ``fingerprint`` of ``source`` and record it."""

    action: ClassVar[Action] = Action.IMAGE_DOWNLOAD
    fingerprint: str
    source: str
    size: int
    pull: PullSource
    writable: Writable
    record: RecordedImage
    replace_cached: bool = False
    """The fingerprint is present as a daemon-cached image: apply deletes that copy first."""

    def _wire_fields(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "source": self.source, "size": self.size,
                "pull": self.pull, "writable": self.writable, "record": self.record,
                "replace_cached": True if self.replace_cached else None}


class ImageAdopt(_Typed):
    """``image.adopt``: record image ``fingerprint``, already in the store, as this owner's."""

    action: ClassVar[Action] = Action.IMAGE_ADOPT
    fingerprint: str
    source: str
    record: RecordedImage

    def _wire_fields(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "source": self.source, "record": self.record}


class ImageUpdate(_Typed):
    """``image.update``: give image ``fingerprint`` the declared writable fields."""

    action: ClassVar[Action] = Action.IMAGE_UPDATE
    fingerprint: str
    source: str
    fields: dict[str, FieldChange]
    writable: Writable
    record: RecordedImage

    def _wire_fields(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "source": self.source, "fields": self.fields,
                "writable": self.writable, "record": self.record}


class ImageDelete(_Typed):
    """``image.delete``: delete image ``fingerprint`` (``source``: the entry it served,
    None when unknown); ``instances`` were created from it, for review only."""

    action: ClassVar[Action] = Action.IMAGE_DELETE
    fingerprint: str
    source: str | None = None
    instances: tuple[str, ...] = ()

    def _wire_fields(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "source": self.source,
                "instances": list(self.instances)}


class AliasCreate(_Typed):
    """``alias.create``: make ``alias`` point to image ``to``."""

    action: ClassVar[Action] = Action.ALIAS_CREATE
    alias: str
    to: str
    description: str

    def _wire_fields(self) -> dict[str, Any]:
        return {"alias": self.alias, "to": self.to, "description": self.description}


class AliasMove(_Typed):
    """``alias.move``: repoint ``alias`` from image ``from_`` to image ``to``."""

    action: ClassVar[Action] = Action.ALIAS_MOVE
    alias: str
    from_: str
    to: str
    description: str

    def _wire_fields(self) -> dict[str, Any]:
        return {"alias": self.alias, "from_": self.from_, "to": self.to,
                "description": self.description}


class AliasUpdate(_Typed):
    """``alias.update``: set the description of ``alias``, which points to ``fingerprint``."""

    action: ClassVar[Action] = Action.ALIAS_UPDATE
    alias: str
    fingerprint: str
    description: str
    fields: dict[str, FieldChange]

    def _wire_fields(self) -> dict[str, Any]:
        return {"alias": self.alias, "fingerprint": self.fingerprint,
                "description": self.description, "fields": self.fields}


class AliasDelete(_Typed):
    """``alias.delete``: delete ``alias``, which points to image ``from_``."""

    action: ClassVar[Action] = Action.ALIAS_DELETE
    alias: str
    from_: str

    def _wire_fields(self) -> dict[str, Any]:
        return {"alias": self.alias, "from_": self.from_}


TypedChange = (ServerUpdate | ImageDownload | ImageAdopt | ImageUpdate | ImageDelete
               | AliasCreate | AliasMove | AliasUpdate | AliasDelete)
"""A plan's change, typed by its action."""

Recorded = ImageDownload | ImageAdopt | ImageUpdate
"""The changes that put an image in this owner's records once it is in the store."""

FAMILIES: dict[Action, type[TypedChange]] = {
    cls.action: cls
    for cls in (ServerUpdate, ImageDownload, ImageAdopt, ImageUpdate, ImageDelete,
                AliasCreate, AliasMove, AliasUpdate, AliasDelete)
}
"""The typed class of each action that has one (``image.refresh`` has none: no plan
makes it and apply does not carry it out)."""


def typed(c: Change) -> TypedChange:
    """``c`` as its action's typed change; PlanError when it does not fit the action."""
    family = FAMILIES.get(c.action)
    if family is None:
        raise PlanError(f"target {c.target!r}: {c.action.value} is not supported")
    given = {k: v for k in family.model_fields if (v := getattr(c, k)) is not None}
    if family is ImageDownload:
        given["replace_cached"] = bool(c.replace_cached)
    try:
        return family.model_validate(given)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PlanError(f"target {c.target!r}: {c.action.value}: {where}: "
                        f"{first['msg'].lower()}") from exc


def check_fits(c: Change) -> None:
    """PlanError when ``c`` has a typed family (see :data:`FAMILIES`) it does not fit."""
    if c.action in FAMILIES:
        typed(c)
