"""The desired-state file, version 1, exactly as users write it.

These models are the single source of ``schemas/desired-state.schema.json``.
They check shape only (types, enums, patterns, unknown keys); cross-references
(unknown remote or target, duplicate aliases, ...) are checked by
``reconciler.desired.validate``, which turns this file into a
:class:`reconciler.model.config.Config`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import Field

from reconciler.model.base import Frozen

OWNER_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
SOURCE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*:[^\s:][^\s]*$"
FINGERPRINT_PATTERN = r"^[0-9a-f]{64}$"
DURATION_PATTERN = r"^[1-9][0-9]*d$"

ImageType = Literal["container", "virtual-machine"]


class RemoteFile(Frozen):
    """A remote image server."""

    url: str = Field(description="http:// or https:// URL of the image server.")
    protocol: Literal["simplestreams", "incus"] = "simplestreams"
    certificate: str | None = Field(
        default=None,
        description="PEM text or a path relative to this file; trusted for TLS by this tool "
        "and handed to the daemon as source.certificate.",
    )


class TargetFile(Frozen):
    """An image store: an Incus daemon and one of its projects."""

    url: str | None = Field(
        default=None, description="unix:///path/to/unix.socket or https://host:port; "
        "default: the local daemon's socket."
    )
    urls: list[str] | None = Field(
        default=None, min_length=1,
        description="Instead of url: addresses of members of one cluster, tried in order; "
        "the first that answers is used.",
    )
    project: str = "default"
    client_cert: str | None = Field(default=None, description="PEM text or a path.")
    client_key: str | None = Field(default=None, description="PEM text or a path.")
    server_cert: str | None = Field(default=None, description="PEM text or a path.")


class AliasFile(Frozen):
    """A local alias with a description."""

    name: str = Field(min_length=1, max_length=64)
    description: str = ""


AliasItem = Annotated[str, Field(min_length=1, max_length=64)] | AliasFile


class CachedPolicyFile(Frozen):
    """Delete daemon-cached images unused for this long (for example ``30d``)."""

    delete_unused_after: str = Field(pattern=DURATION_PATTERN)


class PolicyFile(Frozen):
    """What the tool may delete and how it treats conflicts."""

    prune: bool = True
    alias_conflicts: Literal["fail", "take"] = "fail"
    cached: Literal["keep"] | CachedPolicyFile = "keep"


class DefaultsFile(Frozen):
    """Values applied to every image entry that does not say otherwise."""

    type: ImageType | None = None
    architecture: str | None = None
    auto_update: bool | None = None
    public: bool | None = None
    profiles: list[str] | None = None
    properties: dict[str, str] | None = None
    expires_after: str | None = Field(default=None, pattern=DURATION_PATTERN)


class ImageFile(Frozen):
    """One image to keep: a remote alias, tracked or pinned, with its local aliases."""

    source: str = Field(pattern=SOURCE_PATTERN, description="<remote>:<alias on that remote>")
    type: ImageType | None = None
    architecture: str | None = None
    fingerprint: str | None = Field(default=None, pattern=FINGERPRINT_PATTERN)
    aliases: list[AliasItem] = Field(default_factory=list)
    auto_update: bool | None = None
    public: bool | None = None
    expires_at: datetime | date | None = None
    expires_after: str | None = Field(default=None, pattern=DURATION_PATTERN)
    profiles: list[str] | None = None
    properties: dict[str, str] | None = None
    targets: list[str] | None = None


class DesiredStateFile(Frozen):
    """The whole desired-state file (version 1)."""

    version: Literal[1]
    owner: str = Field(default="incus-images", pattern=OWNER_PATTERN)
    remotes: dict[str, RemoteFile] = Field(default_factory=dict)
    targets: dict[str, TargetFile] | None = None
    server: dict[str, str | int | bool] = Field(default_factory=dict)
    defaults: DefaultsFile = Field(default_factory=DefaultsFile)
    policy: PolicyFile = Field(default_factory=PolicyFile)
    images: list[ImageFile] | None = None
