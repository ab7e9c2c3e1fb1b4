"""``incus-images status --format json``: the stores as they are.

``schemas/status.schema.json`` is generated from :class:`StatusReport`.  The shape
is the contract's (``{"targets": {name: {"project", "images": [...]}}}``); every
key listed there is always present (null when unknown).  The optional extras:
``provenance`` (written only when the owner's inventory records it), a target's
``url`` (only for a target declared with ``urls:``), its ``members`` (only for a
cluster) and its ``broken_copies`` and ``unchecked_members`` (only under ``--verify``).
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


class BrokenCopyStatus(Frozen):
    """An image of this owner whose files one member cannot serve (``status --verify``)."""

    fingerprint: str
    member: str = Field(description='The member\'s name; "" for a standalone daemon.')
    detail: str = Field(description="The daemon's answer to the export, in its own words.")
class MemberStatus(Frozen):
    """One member of a clustered target, as the observation found it."""

    name: str
    status: str = Field(description="The daemon's word: Online, Offline, Evacuated, ...")
    url: str
    healthy: bool = Field(description="Online and accepting connections at its url.")
    problem: str | None = Field(
        default=None, description="Why it is not healthy (null when it is).")


class TargetStatus(Frozen):
    project: str
    images: list[ImageStatus] = Field(default_factory=list)
    broken_copies: list[BrokenCopyStatus] | None = Field(
        default=None, description="Only with --verify: every broken copy of an image this "
        "owner manages, by fingerprint and member ([] when none).")
    unchecked_members: dict[str, str] | None = Field(
        default=None, description="Only with --verify: the members that could not be "
        "checked, with why.")
    url: str | None = Field(default=None, description="For a target declared with urls: "
                            "the address that answered (absent otherwise).")
    members: list[MemberStatus] | None = Field(
        default=None, description="A clustered target's members; left out when the "
        "target is not a cluster.")


class StatusReport(Frozen):
    targets: dict[str, TargetStatus] = Field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        """The contract's JSON: every listed key present, ``provenance`` only when known."""
        data = self.model_dump(mode="json")
        for target in data["targets"].values():
            for key in ("broken_copies", "unchecked_members", "url", "members"):
                if target.get(key) is None:
                    target.pop(key, None)
            for img in target["images"]:
                if img.get("provenance") is None:
                    img.pop("provenance", None)
        return data
