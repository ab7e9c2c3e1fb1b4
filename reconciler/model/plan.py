"""The plan: a value that can be printed, saved, and applied later.

The JSON shape is the contract's (``schemas/plan.schema.json`` is generated from
:class:`Plan`).  ``reason`` and ``message`` are for people; ``apply`` never
branches on them.  Changes are sorted by :data:`ACTION_ORDER`, then target, then
the thing changed, which is also the order ``apply`` performs them in per target.

:class:`Change` is the wire format: one flat record, most fields optional because
each action uses a few.  Code builds and reads the typed changes of
:mod:`reconciler.model.changes` (one class per action, its fields required) and
converts at the boundary (``wire()`` / ``typed()``).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field, model_serializer

from reconciler.model.base import Frozen
from reconciler.model.desired import ImageType
from reconciler.model.observed import Inventory, Provenance, RecordedImage
from reconciler.model.remote import RemoteFile
from reconciler.model.snapshot import ObservedSnapshot
from reconciler.model.times import rfc3339

FORMAT_VERSION = "1"


class Action(StrEnum):
    """What a change does, in the order apply performs the actions: server.update,
    image.download, image.adopt, image.refresh, image.update, alias.create, alias.move,
    alias.update, alias.delete, image.delete."""

    SERVER_UPDATE = "server.update"
    IMAGE_DOWNLOAD = "image.download"
    IMAGE_ADOPT = "image.adopt"
    IMAGE_REFRESH = "image.refresh"
    IMAGE_UPDATE = "image.update"
    ALIAS_CREATE = "alias.create"
    ALIAS_MOVE = "alias.move"
    ALIAS_UPDATE = "alias.update"
    ALIAS_DELETE = "alias.delete"
    IMAGE_DELETE = "image.delete"

    @property
    def rank(self) -> int:
        return ACTION_ORDER.index(self)

    @property
    def is_destructive(self) -> bool:
        return self in (Action.ALIAS_DELETE, Action.IMAGE_DELETE)


ACTION_ORDER: tuple[Action, ...] = tuple(Action)


class FieldChange(Frozen):
    """One writable field (or server key) of a change: its value now and after apply."""

    model_config = ConfigDict(populate_by_name=True)

    from_: Any = Field(default=None, alias="from")
    """The value now (null: unset). Example: "12"."""
    to: Any = None
    """The value after apply (null: unset). Example: "6"."""

    @model_serializer(mode="plain")
    def _both_ends(self) -> dict[str, Any]:
        # Both ends are always written, even when one is null (a cleared field).
        return {"from": _jsonable(self.from_), "to": _jsonable(self.to)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, tuple):
        return list(value)
    return value


class Writable(Frozen):
    """The writable fields to land on an image (Incus ``ImagePut``).

    ``properties`` are merged over the image's own; a None value removes the key.
    ``expires_at`` None means no expiry (written as ``1970-01-01T00:00:00Z``).
    """

    auto_update: bool
    """The daemon's auto_update flag to set."""
    public: bool
    """Whether the image is to be public."""
    profiles: tuple[str, ...]
    """The image's default profiles, in order. Example: ["default"]."""
    properties: dict[str, str | None] = Field(default_factory=dict)
    """Properties to set (null: remove the key), merged over the image's own."""
    expires_at: datetime | None = None
    """When the image expires (RFC 3339), or null for never."""


class PullSource(Frozen):
    """How to ask the daemon to pull a build.  Exactly one of alias/fingerprint is set.

    The remote's certificate is not stored here: apply takes it from the file.
    ``files`` lets apply fetch and upload the build itself when the daemon lands
    another one (its simplestreams cache is up to an hour old).
    """

    remote: str
    """The remote's name in the desired-state file. Example: "images"."""
    server: str
    """The remote's URL, without credentials. Example: "https://images.linuxcontainers.org"."""
    protocol: str
    """simplestreams or incus."""
    alias: str | None = None
    """The remote alias to pull (a tracked entry); null when pulling by fingerprint."""
    fingerprint: str | None = None
    """The exact build to pull (a pinned or locked entry); null when pulling by alias."""
    image_type: ImageType = "container"
    """container or virtual-machine."""
    files: tuple[RemoteFile, ...] = ()
    """The build's files on a simplestreams remote, for apply to fetch and upload itself."""


class Change(Frozen):
    """One step of a plan."""

    model_config = ConfigDict(populate_by_name=True)

    action: Action
    """What the change does. Example: "image.download"."""
    target: str
    """The target (its name in the desired-state file) the change is made on."""
    project: str
    """The effective project whose images change. Example: "default"."""
    reason: str
    """Why, for people (scripts should not parse it). Example: "declared, not in store"."""
    fingerprint: str | None = None
    """On image changes: the image's 64-hex-digit fingerprint."""
    source: str | None = None
    """On image changes: the entry's source. Example: "images:debian/12"."""
    size: int | None = None
    """On image.download: bytes to download, from the remote's index."""
    alias: str | None = None
    """On alias changes: the local alias. Example: "debian-12"."""
    from_: str | None = Field(default=None, alias="from")
    """On alias.move and alias.delete: the fingerprint the alias points at now."""
    to: str | None = None
    """On alias.create and alias.move: the fingerprint the alias will point at; on
    image.refresh: the build expected to replace the image."""
    description: str | None = None
    """On alias.create and alias.update: the alias's description."""
    fields: dict[str, FieldChange] | None = None
    """On server.update and image.update: each field or server key that changes."""
    pull: PullSource | None = None
    """On image.download and image.refresh: where the build comes from."""
    writable: Writable | None = None
    """On image.download, image.adopt and image.update: the writable fields to land."""
    record: RecordedImage | None = None
    """What this owner's inventory will record about the image."""
    instances: list[str] | None = None
    """On ``image.delete``: the instances of the target created from the image (``[]``
    when none).  Deleting the image does not affect them; it is for review."""
    replace_cached: bool | None = None
    """On a download: the fingerprint is present as a daemon-cached image, which no API
    call can turn into an explicit one, so apply deletes that copy and pulls it again."""

    def sort_key(self) -> tuple[int, str, str, str]:
        return (self.action.rank, self.target, self.alias or "", self.fingerprint or "")


class PlanWarning(Frozen):
    """A plan warning.  ``code`` is stable; CI scripts match on it."""

    code: str
    """A stable code CI scripts can match. Example: "requirements.nesting"."""
    target: str
    """The target the warning is about."""
    image: str
    """The source of the entry it is about. Example: "images:debian/12"."""
    message: str
    """What is wrong, for people."""


class Summary(Frozen):
    """How many changes of each action the plan has, and how much it downloads."""

    actions: dict[str, int] = Field(default_factory=dict)
    """Action -> number of changes. Example: {"image.download": 1, "alias.move": 1}."""
    download_bytes: int = 0
    """The total size of every image.download, in bytes."""


class Untouched(Frozen):
    """An image the plan leaves alone because this owner does not manage it."""

    target: str
    """The target holding the image."""
    fingerprint: str
    """The image's fingerprint."""
    owner: str | None = None
    """The owner that manages it, or null for nobody."""
    cached: bool = False
    """Whether the daemon cached it (created from a remote by an instance)."""
    aliases: tuple[str, ...] = ()
    """Its local aliases."""


class TargetReach(Frozen):
    """How a target was reached, for a target declared with several addresses
    (``urls:``), or why it could not be observed (``error``: none of its changes is in
    the plan; ``plan`` and ``apply`` exit 1 naming it).

    ``url`` is the address used; ``passed_over`` the ones tried before it, each with
    why it did not answer."""

    url: str | None = None
    """The address that answered and was used for the whole run."""
    passed_over: dict[str, str] | None = None
    """The addresses tried before ``url``, each with why it did not answer."""
    error: str | None = None
    """Why the target could not be observed (none of its changes is in the plan)."""

    def line(self, target: str) -> str:
        """``target 'prod': via URL (URL2 did not answer: why)`` or the error."""
        if self.error is not None:
            return self.error
        skipped = "; ".join(f"{u} did not answer: {why}"
                            for u, why in (self.passed_over or {}).items())
        return f"target {target!r}: via {self.url}" + (f" ({skipped})" if skipped else "")


class Plan(Frozen):
    """A whole plan.  ``ownership`` is each touched target's inventory after apply.

    The last fields make a plan a self-checking saved file (``reconciler.planfile``):
    ``desired_digest`` is the SHA-256 of the desired-state file it was made from;
    ``provenance`` that file's git commit (None outside git); ``observed`` what it
    saw on every target it changes (``apply PLAN`` refuses when any of it moved);
    ``digest`` the SHA-256 of the canonical JSON of every other field, so an edited
    or truncated file is detected.  None of them holds key material.
    """

    format_version: str = FORMAT_VERSION
    """The version of this JSON format: "1"."""
    owner: str = "incus-images"
    """The owner of the desired-state file the plan was made from."""
    created_at: datetime | None = None
    """When the plan was made (RFC 3339, UTC)."""
    changes: tuple[Change, ...] = ()
    """The changes, in the order apply makes them; [] when there is nothing to do."""
    summary: Summary = Field(default_factory=Summary)
    """Counts per action and the bytes to download."""
    warnings: tuple[PlanWarning, ...] = ()
    """Problems found that do not stop the plan (see --fail-on-warnings)."""
    notes: tuple[str, ...] = ()
    """Things the plan could not check (for example a host's cgroup layout); not warnings."""
    untouched: tuple[Untouched, ...] = ()
    """Images the plan leaves alone because this owner does not manage them."""
    ownership: dict[str, Inventory] = Field(default_factory=dict)
    """Target -> this owner's inventory there once the plan is applied."""
    targets: dict[str, TargetReach] | None = None
    """Targets declared with ``urls:`` (the address used) and targets that could not be
    observed (why); None when there are none."""
    desired_digest: str | None = None
    """In a saved plan: the SHA-256 of the desired-state file's bytes."""
    provenance: Provenance | None = None
    """In a saved plan: the git commit, repository and path of the desired-state file."""
    observed: dict[str, ObservedSnapshot] | None = None
    """In a saved plan: target -> what the plan observed there (apply PLAN refuses as
    stale when any of it moved)."""
    digest: str | None = None
    """In a saved plan: the SHA-256 of the canonical JSON of every other field."""

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    @property
    def failed_targets(self) -> dict[str, str]:
        """The targets that could not be observed, with why, by name."""
        return {t: r.error for t, r in sorted((self.targets or {}).items())
                if r.error is not None}

    def for_target(self, target: str) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.target == target)

    def to_json_dict(self) -> dict[str, Any]:
        """The contract's JSON: ``from`` spelled as such, absent optionals left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def summarize(changes: tuple[Change, ...]) -> Summary:
    counts: dict[str, int] = {}
    for c in changes:
        counts[c.action.value] = counts.get(c.action.value, 0) + 1
    total = sum(c.size or 0 for c in changes if c.action is Action.IMAGE_DOWNLOAD)
    return Summary(actions=counts, download_bytes=total)
