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

from pydantic import ConfigDict, Field

from reconciler.model.base import Frozen


class Provenance(Frozen):
    """Which commit of which file declared the image, when the owner's inventory says."""

    commit: str | None = None
    """The full hash of the git commit, or null."""
    repository: str | None = None
    """The repository (origin URL without credentials, or its top directory), or null."""
    path: str | None = None
    """The desired-state file, relative to the repository's top level, or null."""
    dirty: bool | None = None
    """True when the file differed from the commit; null when unknown."""


class ImageStatus(Frozen):
    """One image of one target."""

    fingerprint: str = Field(
        description="The image's fingerprint: 64 hex digits (SHA-256).",
        examples=["4f3a2b1c9d8e" + "0" * 52])
    managed: bool = Field(description="True only for images the file's owner manages.")
    owner: str | None = Field(description="The owner that manages the image, or null.")
    cached: bool = Field(description="True for an image the daemon cached when an instance "
                         "was created from a remote (the daemon prunes it on its own).")
    aliases: list[str] = Field(description="The image's local aliases, sorted.",
                               examples=[["debian-12"]])
    source: str | None = Field(
        description="The entry's source for images this owner manages; otherwise the "
        "daemon's recorded update source (remote name or server URL, colon, alias), or null.")
    auto_update: bool = Field(description="The daemon's auto_update flag on the image.")
    expires_at: datetime | None = Field(
        description="When the daemon deletes the image (RFC 3339), or null for never.",
        examples=["2027-06-30T00:00:00Z", None])
    last_used_at: datetime | None = Field(
        description="When an instance was last created from the image, or null for never.")
    size: int = Field(description="The image's size in bytes.", examples=[123456789])
    update_available: bool | None = Field(
        description="null when unknown (--offline, or no readable remote); false for "
        "pinned or locked entries that match their pin.")
    provenance: Provenance | None = None
    """Which commit of which file declared the image; only present when the owner's
    inventory records it."""


class BrokenCopyStatus(Frozen):
    """An image of this owner whose files one member cannot serve (``status --verify``)."""

    fingerprint: str
    """The image's fingerprint."""
    member: str = Field(description='The member\'s name; "" for a standalone daemon.')
    detail: str = Field(description="The daemon's answer to the export, in its own words.")


class MemberStatus(Frozen):
    """One member of a clustered target, as the observation found it."""

    name: str
    """The member's name (``incus cluster list``)."""
    status: str = Field(description="The daemon's word: Online, Offline, Evacuated, ...")
    url: str
    """The member's cluster address, as the daemon lists it."""
    healthy: bool = Field(description="Online and accepting connections at its url.")
    problem: str | None = Field(
        default=None, description="Why it is not healthy (null when it is).")


class TargetStatus(Frozen):
    """One target's image store."""

    project: str
    """The project the file names for the target. Example: "default"."""
    images: list[ImageStatus] = Field(default_factory=list)
    """Every image of the store, this owner's first."""
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
    """What incus-images status --format json (or yaml) prints: every image of every
    target."""

    model_config = ConfigDict(title="incus-images status")

    targets: dict[str, TargetStatus] = Field(default_factory=dict)
    """Target name (as the desired-state file names it) -> its store."""

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
