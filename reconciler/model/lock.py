"""The lock file (``images.lock.yaml``): the build every tracked entry resolves to.

``schemas/lock.schema.json`` is generated from :class:`LockFile`.  Invariants:

* One :class:`LockedImage` per tracked (non-pinned) entry and target, keyed by
  :class:`~reconciler.model.keys.EntryKey` = (target, source, type, canonical
  architecture); no two
  share a key.
* No timestamps and no run-dependent values: the file is a pure function of the
  resolved builds, so locking again without upstream changes yields the same bytes.
* ``images`` is sorted by :meth:`EntryKey.sort_key` (source, type, architecture,
  target), whatever order the entries were resolved in.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from reconciler.model.base import Frozen
from reconciler.model.desired import FINGERPRINT_PATTERN, SOURCE_PATTERN, ImageType
from reconciler.model.keys import EntryKey

LOCK_VERSION: Literal[1] = 1


LockKey = EntryKey
"""The lock file keys entries by their :class:`EntryKey` (the older name, kept)."""


class LockedBuild(Frozen):
    """The locked build of one entry on one target."""

    fingerprint: str = Field(pattern=FINGERPRINT_PATTERN)
    version: str = Field(default="", description="The remote's version key (simplestreams "
                         "serial, or the image's serial property on an incus remote).")
    size: int = Field(default=0, ge=0, description="Bytes to download, from the remote.")


class LockedImage(LockedBuild):
    """One line of the lock file: an entry's identity on a target, and its build."""

    source: str = Field(pattern=SOURCE_PATTERN)
    type: ImageType = "container"
    architecture: str = Field(min_length=1)
    target: str = Field(min_length=1)

    @property
    def key(self) -> EntryKey:
        return EntryKey(self.target, self.source, self.type, self.architecture)

    @property
    def build(self) -> LockedBuild:
        return LockedBuild(fingerprint=self.fingerprint, version=self.version, size=self.size)


Locks = dict[EntryKey, LockedBuild]
"""What the planner reads: the locked build per entry identity."""


class LockFile(Frozen):
    """The whole lock file (version 1)."""

    version: Literal[1] = LOCK_VERSION
    images: tuple[LockedImage, ...] = ()

    @field_validator("images")
    @classmethod
    def _unique_and_sorted(cls, images: tuple[LockedImage, ...]) -> tuple[LockedImage, ...]:
        keys = [i.key for i in images]
        if len(set(keys)) != len(keys):
            dup = next(k for k in keys if keys.count(k) > 1)
            raise ValueError(f"{dup.label()} is locked twice")
        return tuple(sorted(images, key=lambda i: i.key.sort_key()))

    @classmethod
    def of(cls, locks: Locks) -> LockFile:
        """The lock file holding exactly ``locks`` (in canonical order)."""
        return cls(images=tuple(
            LockedImage.model_validate({"target": k.target, "source": k.source, "type": k.type,
                                         "architecture": k.architecture, **b.model_dump()})
            for k, b in locks.items()))

    def locks(self) -> Locks:
        return {i.key: i.build for i in self.images}
