"""What a remote image server offers, read once per remote per run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

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


class ImageSource(Protocol):
    """Where a catalog that is read lazily makes its builds (an adapter's decoder).

    ``image`` is the build a fingerprint names, with its ``aliases``, or None when
    the remote does not serve it; ``all_images`` every build, in the catalog's
    order.  Either may raise the error that reading the remote's index raises.
    """

    def image(self, fingerprint: str) -> RemoteImage | None: ...

    def all_images(self) -> tuple[RemoteImage, ...]: ...


class RemoteCatalog:
    """Every build a remote serves, with its alias table.

    ``alias_table`` maps ``"name|type|architecture"`` to a fingerprint: the
    daemon's own resolution (newest version wins, per type and architecture).
    ``url`` is the remote's URL without any ``user:password@``: what the daemon is
    handed and a plan records (see :mod:`reconciler.redact`).

    A catalog holds its builds (``images``) or, given a ``source``, makes each
    one the first time it is asked for (``by_fingerprint``, ``resolve``): a
    public index lists tens of thousands of builds and a run uses a few.  Both
    answer the same; a build, once made, is kept.  Immutable by convention.
    """

    __slots__ = ("_all", "_made", "_source", "alias_table", "protocol", "remote", "url")

    def __init__(self, *, remote: str, url: str, protocol: str,
                 images: Sequence[RemoteImage] = (),
                 alias_table: Mapping[str, str] | None = None,
                 source: ImageSource | None = None) -> None:
        self.remote = remote
        self.url = url
        self.protocol = protocol
        self.alias_table: Mapping[str, str] = {} if alias_table is None else alias_table
        self._source = source
        self._all: tuple[RemoteImage, ...] | None = None if source else tuple(images)
        self._made: dict[str, RemoteImage | None] = {}
        if source is None:
            for image in reversed(self._all or ()):
                self._made[image.fingerprint] = image  # the first listed wins

    def __repr__(self) -> str:
        return (f"RemoteCatalog(remote={self.remote!r}, url={self.url!r}, "
                f"protocol={self.protocol!r}, aliases={len(self.alias_table)})")

    @property
    def images(self) -> tuple[RemoteImage, ...]:
        """Every build, in the catalog's order (for a lazy catalog: all made now)."""
        if self._all is None:
            assert self._source is not None
            self._all = self._source.all_images()
        return self._all

    @staticmethod
    def alias_key(name: str, type_: str, architecture: str) -> str:
        return f"{name}|{type_}|{architecture}"

    def by_fingerprint(self, fingerprint: str) -> RemoteImage | None:
        if fingerprint in self._made or self._source is None:
            return self._made.get(fingerprint)
        image = self._made[fingerprint] = self._source.image(fingerprint)
        return image

    def resolve(self, alias: str, type_: str, architecture: str) -> RemoteImage | None:
        """The build ``alias`` names for this type and canonical architecture, or None."""
        fp = self.alias_table.get(self.alias_key(alias, type_, architecture))
        return self.by_fingerprint(fp) if fp else None
