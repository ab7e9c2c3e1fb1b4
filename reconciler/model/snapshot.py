"""What a saved plan observed on one target, so ``apply PLAN`` can tell it still holds.

A snapshot holds only what the plan relies on (see ``reconciler.core.freshness.select``):
the writable fields of the images this owner manages or the plan touches, the
target of the aliases it declares or touches, this owner's inventory, and the
daemon's ``images.*`` settings.  Last-use times, other owners' images, other
projects and unrelated server config are deliberately absent, so they can change
without making the plan stale.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from reconciler.model.base import Frozen
from reconciler.model.observed import Inventory, ObservedImage


class ImageFields(Frozen):
    """An image's writable fields as the daemon reported them (its fingerprint is the key)."""

    auto_update: bool
    """The daemon's auto_update flag."""
    public: bool
    """Whether the image is public."""
    profiles: tuple[str, ...]
    """The image's default profiles, in order."""
    properties: dict[str, str] = Field(default_factory=dict)
    """The image's properties."""
    expires_at: datetime | None = None
    """When the image expires, or null for never."""

    @classmethod
    def of(cls, image: ObservedImage) -> ImageFields:
        return cls(auto_update=image.auto_update, public=image.public,
                   profiles=tuple(image.profiles), properties=dict(image.properties),
                   expires_at=image.expires_at)


class ObservedSnapshot(Frozen):
    """One target as the plan saw it.

    ``images`` maps a fingerprint to its fields, or to None when the image was
    absent (a download); ``aliases`` maps an alias name to the fingerprint it
    pointed to, or None when it did not exist.  ``inventory`` is this owner's
    record for ``project`` (the effective project), empty when it had none.
    ``server`` holds the daemon's ``images.*`` settings as listed (the daemon
    lists only keys that differ from their defaults).
    """

    project: str
    """The effective project observed."""
    images: dict[str, ImageFields | None] = Field(default_factory=dict)
    """Fingerprint -> the image's writable fields, or null when it was absent."""
    aliases: dict[str, str | None] = Field(default_factory=dict)
    """Alias -> the fingerprint it pointed at, or null when it did not exist."""
    inventory: Inventory
    """This owner's inventory for the project (empty when it had none)."""
    server: dict[str, str] = Field(default_factory=dict)
    """The daemon's images.* settings as it listed them."""
