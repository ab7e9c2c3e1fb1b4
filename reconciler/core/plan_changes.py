"""Constructors of the plan's typed changes (:mod:`reconciler.model.changes`), one per action.

The plan steps build typed changes, whose required fields are required; the
planner turns them into the plan's wire :class:`~reconciler.model.plan.Change`
values once, at the end (:func:`reconciler.core.planner.make_plan`).

A :class:`Stamp` carries what every change on one target shares (target and
effective project), so a plan step names only what its action needs.  Image
deletions are collected as :class:`Deletion` intents first: several steps may ask
to delete one image, and the first reason given wins (:func:`deletion_changes`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from reconciler.model.changes import (
    AliasCreate,
    AliasDelete,
    AliasMove,
    AliasUpdate,
    ImageAdopt,
    ImageDelete,
    ImageDownload,
    ImageUpdate,
    ServerUpdate,
)
from reconciler.model.observed import RecordedImage, TargetState
from reconciler.model.plan import FieldChange, PullSource, Writable


@dataclass(frozen=True)
class Deletion:
    """A request to delete image ``fingerprint`` (``source``: the entry it served)."""

    fingerprint: str
    reason: str
    source: str | None


@dataclass(frozen=True)
class Stamp:
    """Builds the changes of one target."""

    target: str
    project: str

    @classmethod
    def of(cls, state: TargetState) -> Stamp:
        return cls(state.target, state.effective_project)

    def download(
        self, reason: str, *, fingerprint: str, source: str, size: int, pull: PullSource,
        writable: Writable, record: RecordedImage, replace_cached: bool,
    ) -> ImageDownload:
        return ImageDownload(target=self.target, project=self.project, reason=reason,
                             fingerprint=fingerprint, source=source, size=size, pull=pull,
                             writable=writable, record=record,
                             replace_cached=replace_cached)

    def adopt(self, reason: str, *, fingerprint: str, source: str,
              record: RecordedImage) -> ImageAdopt:
        return ImageAdopt(target=self.target, project=self.project, reason=reason,
                          fingerprint=fingerprint, source=source, record=record)

    def update(self, reason: str, *, fingerprint: str, source: str,
               fields: dict[str, FieldChange], writable: Writable,
               record: RecordedImage) -> ImageUpdate:
        return ImageUpdate(target=self.target, project=self.project, reason=reason,
                           fingerprint=fingerprint, source=source, fields=fields,
                           writable=writable, record=record)

    def delete(self, deletion: Deletion, instances: Iterable[str]) -> ImageDelete:
        return ImageDelete(target=self.target, project=self.project, reason=deletion.reason,
                           fingerprint=deletion.fingerprint, source=deletion.source,
                           instances=tuple(instances))

    def alias_create(self, reason: str, *, alias: str, to: str, description: str) -> AliasCreate:
        return AliasCreate(target=self.target, project=self.project, reason=reason,
                           alias=alias, to=to, description=description)

    def alias_move(self, reason: str, *, alias: str, from_: str, to: str,
                   description: str) -> AliasMove:
        return AliasMove(target=self.target, project=self.project, reason=reason,
                         alias=alias, from_=from_, to=to, description=description)

    def alias_update(self, reason: str, *, alias: str, fingerprint: str, description: str,
                     fields: dict[str, FieldChange]) -> AliasUpdate:
        return AliasUpdate(target=self.target, project=self.project, reason=reason,
                           alias=alias, fingerprint=fingerprint, description=description,
                           fields=fields)

    def alias_delete(self, reason: str, *, alias: str, from_: str) -> AliasDelete:
        return AliasDelete(target=self.target, project=self.project, reason=reason,
                           alias=alias, from_=from_)

    def server_update(self, reason: str, *, fields: dict[str, FieldChange]) -> ServerUpdate:
        return ServerUpdate(target=self.target, project=self.project, reason=reason,
                            fields=fields)


def first_deletions(deletions: Iterable[Deletion]) -> tuple[Deletion, ...]:
    """``deletions`` with repeats of one fingerprint dropped (the first one stays)."""
    seen: dict[str, Deletion] = {}
    for d in deletions:
        seen.setdefault(d.fingerprint, d)
    return tuple(seen.values())


def deletion_changes(stamp: Stamp, deletions: Iterable[Deletion],
                     instances: Mapping[str, tuple[str, ...]]) -> list[ImageDelete]:
    """One ``image.delete`` per fingerprint, with the instances created from it."""
    return [stamp.delete(d, instances.get(d.fingerprint, ()))
            for d in first_deletions(deletions)]
