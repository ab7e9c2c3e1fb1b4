"""What a target holds after apply's own changes, without looking again.

Pure.  Apply observes each target once; :func:`fold` keeps that observation
current from each change apply has carried out, so no change needs another
look at the whole store.  :func:`holds` says whether an image already has a
change's writable fields (then nothing needs writing).

Invariants:
- ``fold(state, c)`` is what the daemon shows after ``c`` succeeded on a store
  that showed ``state``: an ``image.download`` adds (or replaces) the image as
  read after it landed (``landed``); an alias lives on exactly one image; a
  deleted image takes its aliases with it.
- A change that shows nothing in a :class:`TargetState` (``image.adopt``) leaves
  it unchanged, and so does a change about an image ``state`` does not hold.
"""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.core.builds import same_time
from reconciler.model.changes import (
    AliasCreate,
    AliasDelete,
    AliasMove,
    AliasUpdate,
    ImageDelete,
    ImageDownload,
    ImageUpdate,
    ServerUpdate,
    TypedChange,
)
from reconciler.model.observed import ObservedAlias, ObservedImage, TargetState
from reconciler.model.plan import Writable

__all__ = ["fold", "holds", "with_aliases", "with_image", "without_image", "written"]


def holds(img: ObservedImage, writable: Writable) -> bool:
    """Whether ``img`` already has every field ``writable`` sets (properties merged
    over the image's own, a None or empty value meaning "absent")."""
    if (img.public, img.auto_update, tuple(img.profiles)) != (
            writable.public, writable.auto_update, tuple(writable.profiles)):
        return False
    for key, value in writable.properties.items():
        if value in (None, ""):
            if key in img.properties:
                return False
        elif img.properties.get(key) != str(value):
            return False
    return same_time(img.expires_at, writable.expires_at)


def fold(state: TargetState, c: TypedChange, landed: ObservedImage | None = None) -> TargetState:
    """``state`` after ``c`` succeeded (``landed``: a download's image, as read)."""
    match c:
        case ImageDownload():
            return with_image(state, landed) if landed is not None else state
        case ImageUpdate():
            return _with_fields(state, c.fingerprint, c.writable)
        case ImageDelete():
            return without_image(state, c.fingerprint)
        case AliasCreate():
            return _with_alias(state, ObservedAlias(name=c.alias, description=c.description,
                                                    target=c.to))
        case AliasMove():
            held = state.alias_targets().get(c.alias)
            description = held.description if held is not None else c.description
            return _with_alias(state, ObservedAlias(name=c.alias, description=description,
                                                    target=c.to))
        case AliasUpdate():
            held = state.alias_targets().get(c.alias)
            if held is None:
                return state
            return _with_alias(state, held.model_copy(update={"description": c.description}))
        case AliasDelete():
            return _without_alias(state, c.alias)
        case ServerUpdate():
            config = dict(state.server_config)
            for key, fc in c.fields.items():
                if fc.to is None or fc.to == "":
                    config.pop(key, None)
                else:
                    config[key] = str(fc.to)
            return state.model_copy(update={"server_config": config})
    return state


def with_image(state: TargetState, img: ObservedImage) -> TargetState:
    """``state`` holding ``img`` (as read: with its aliases), in fingerprint order."""
    others = [i for i in state.images if i.fingerprint != img.fingerprint]
    held = {a.name for a in img.aliases}
    others = [_drop_aliases(i, held) for i in others]
    images = tuple(sorted((*others, img), key=lambda i: i.fingerprint))
    return state.model_copy(update={"images": images})


def without_image(state: TargetState, fingerprint: str) -> TargetState:
    """``state`` without image ``fingerprint`` (nor its aliases)."""
    images = tuple(i for i in state.images if i.fingerprint != fingerprint)
    if len(images) == len(state.images):
        return state
    return state.model_copy(update={"images": images})


def written(img: ObservedImage, writable: Writable) -> ObservedImage:
    """``img`` once ``writable`` is written over it (``update_image``)."""
    properties = dict(img.properties)
    for key, value in writable.properties.items():
        if value in (None, ""):
            properties.pop(key, None)
        else:
            properties[key] = str(value)
    return img.model_copy(update={
        "public": writable.public, "auto_update": writable.auto_update,
        "profiles": tuple(writable.profiles), "properties": properties,
        "expires_at": writable.expires_at})


def with_aliases(state: TargetState, aliases: Iterable[ObservedAlias]) -> TargetState:
    """``state`` whose images carry exactly ``aliases`` (the daemon's alias table);
    an alias of an image ``state`` does not hold is left out."""
    by_image: dict[str, list[ObservedAlias]] = {}
    for alias in sorted(aliases, key=lambda a: a.name):
        by_image.setdefault(alias.target, []).append(alias)
    images = []
    for img in state.images:
        held = tuple(by_image.get(img.fingerprint, ()))
        images.append(img if held == img.aliases else img.model_copy(update={"aliases": held}))
    return state.model_copy(update={"images": tuple(images)})


def _with_fields(state: TargetState, fingerprint: str, writable: Writable) -> TargetState:
    img = state.image(fingerprint)
    if img is None:
        return state
    return with_image(state, written(img, writable))


def _with_alias(state: TargetState, alias: ObservedAlias) -> TargetState:
    target = state.image(alias.target)
    if target is None:
        return _without_alias(state, alias.name)
    kept = tuple(a for a in target.aliases if a.name != alias.name)
    return with_image(state, target.model_copy(update={"aliases": (*kept, alias)}))


def _without_alias(state: TargetState, name: str) -> TargetState:
    return state.model_copy(update={
        "images": tuple(_drop_aliases(i, {name}) for i in state.images)})


def _drop_aliases(img: ObservedImage, names: set[str]) -> ObservedImage:
    if not any(a.name in names for a in img.aliases):
        return img
    return img.model_copy(update={"aliases": tuple(a for a in img.aliases
                                                   if a.name not in names)})
