"""``incus-images status --format json``: the stores as they are.

``schemas/status.schema.json`` is generated from :class:`StatusReport`.  The shape
is the contract's (``{"targets": {name: {"project", "images": [...]}}}``); every
key listed there is always present (null when unknown).  ``provenance`` (written
only when the owner's inventory records it) and a target's ``url`` (only for a
target declared with ``urls:``) are the optional extras.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from reconciler.model.base import Frozen


class Provenance(Frozen):
    """Which commit of which file declared the image, when the owner's inventory says."""

    commit: str | None = None
    repository: str | None = None
    path: str | None = None
    dirty: bool | None = None


class ImageStatus(Frozen):
    """One image of one target."""

    fingerprint: str
    managed: bool = Field(description="True only for images the file's owner manages.")
    owner: str | None = Field(description="The owner that manages the image, or null.")
    cached: bool
    aliases: list[str]
    source: str | None = Field(
        description="The entry's source for images this owner manages; otherwise the "
        "daemon's recorded update source (remote name or server URL, colon, alias), or null.")
    auto_update: bool
    expires_at: datetime | None
    last_used_at: datetime | None
    size: int
    update_available: bool | None = Field(
        description="null when unknown (--offline, or no readable remote); false for "
        "pinned or locked entries that match their pin.")
    provenance: Provenance | None = None


class TargetStatus(Frozen):
    project: str
    images: list[ImageStatus] = Field(default_factory=list)
    url: str | None = Field(default=None, description="For a target declared with urls: "
                            "the address that answered (absent otherwise).")


class StatusReport(Frozen):
    targets: dict[str, TargetStatus] = Field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        """The contract's JSON: every listed key present, ``provenance`` only when known."""
        data = self.model_dump(mode="json")
        for target in data["targets"].values():
            if target.get("url") is None:
                target.pop("url", None)
            for img in target["images"]:
                if img.get("provenance") is None:
                    img.pop("provenance", None)
        return data
