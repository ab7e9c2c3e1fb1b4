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

from pydantic import ConfigDict, Field, field_validator

from reconciler.model.base import Frozen
from reconciler.model.desired import FINGERPRINT_PATTERN, SOURCE_PATTERN, ImageType
from reconciler.model.keys import EntryKey

LOCK_VERSION: Literal[1] = 1


LockKey = EntryKey
"""The lock file keys entries by their :class:`EntryKey` (the older name, kept)."""


class LockedBuild(Frozen):
    """The locked build of one entry on one target."""

    fingerprint: str = Field(
        pattern=FINGERPRINT_PATTERN, title="Fingerprint",
        description="The locked build: all 64 hex digits of its fingerprint. plan and apply "
        "bring this build rather than the remote's newest.",
        examples=["5d3c1e0a8b7f4e2d9c6b1a0f3e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d"])
    version: str = Field(default="", title="Build version",
                         description="The remote's version key (simplestreams "
                         "serial, or the image's serial property on an incus remote); "
                         "for people reading a diff. Default: empty.",
                         examples=["20240101_05:24"])
    size: int = Field(default=0, ge=0, title="Size",
                      description="Bytes to download, from the remote. Default: 0.",
                      examples=[123456789])


class LockedImage(LockedBuild):
    """One line of the lock file: an entry's identity on a target, and its build."""

    model_config = ConfigDict(title="Locked build")

    source: str = Field(pattern=SOURCE_PATTERN, title="Source",
                        description="The entry's source, as the desired-state file says it.",
                        examples=["images:debian/12"])
    type: ImageType = Field(default="container", title="Image type",
                            description="container or virtual-machine. Default: container.",
                            examples=["container"])
    architecture: str = Field(min_length=1, title="Architecture",
                              description="The canonical Incus architecture of the build.",
                              examples=["x86_64"])
    target: str = Field(min_length=1, title="Target",
                        description="The target (its name in the desired-state file) this "
                        "lock applies to.", examples=["local"])

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

    model_config = ConfigDict(title="incus-images lock file (version 1)")

    version: Literal[1] = Field(default=LOCK_VERSION, title="Lock file format version",
                                description="The version of this file's format; 1 is the "
                                "only one.", examples=[1])
    images: tuple[LockedImage, ...] = Field(
        default=(), title="Locked builds",
        description="One locked build per tracked entry and target, sorted by source, "
        "type, architecture and target. Written by incus-images lock; do not edit.")

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
