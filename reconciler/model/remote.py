"""What a remote image server offers, read once per remote per run."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from reconciler.model.base import Frozen
from reconciler.model.desired import ImageType


class RemoteFile(Frozen):
    """One downloadable file of a simplestreams image (metadata or rootfs)."""

    ftype: str
    """The simplestreams file type. Example: "incus.tar.xz", "squashfs"."""
    path: str
    """The file's path on the server, relative to its URL."""
    sha256: str
    """The file's SHA-256, checked after download."""
    size: int
    """The file's size in bytes."""


class RemoteImage(Frozen):
    """One build of one product on a remote.

    ``architecture`` is the canonical Incus name (``x86_64``); ``remote_architecture``
    is what the remote calls it (``amd64`` on simplestreams).  ``files`` is in
    upload order (metadata first); its concatenation hashes to ``fingerprint``.
    ``aliases`` are the remote alias names that resolve to this build.
    """

    fingerprint: str
    type: ImageType
    architecture: str
    remote_architecture: str
    aliases: tuple[str, ...] = ()
    version: str = ""
    created_at: datetime | None = None
    size: int = 0
    files: tuple[RemoteFile, ...] = ()
    requirements: dict[str, str] = Field(default_factory=dict)
    properties: dict[str, str] = Field(default_factory=dict)
    expires_at: datetime | None = None


class RemoteCatalog(Frozen):
    """Every build a remote serves, with its alias table.

    ``alias_table`` maps ``"name|type|architecture"`` to a fingerprint: the
    daemon's own resolution (newest version wins, per type and architecture).
    ``url`` is the remote's URL without any ``user:password@``: what the daemon is
    handed and a plan records (see :mod:`reconciler.redact`).
    """

    remote: str
    url: str
    protocol: str
    images: tuple[RemoteImage, ...] = ()
    alias_table: dict[str, str] = Field(default_factory=dict)

    @staticmethod
    def alias_key(name: str, type_: str, architecture: str) -> str:
        return f"{name}|{type_}|{architecture}"

    def by_fingerprint(self, fingerprint: str) -> RemoteImage | None:
        for image in self.images:
            if image.fingerprint == fingerprint:
                return image
        return None

    def resolve(self, alias: str, type_: str, architecture: str) -> RemoteImage | None:
        """The build ``alias`` names for this type and canonical architecture, or None."""
        fp = self.alias_table.get(self.alias_key(alias, type_, architecture))
        return self.by_fingerprint(fp) if fp else None
