"""The validated desired state: every reference checked, defaults applied, paths read.

A :class:`Config` is what the rest of the pipeline sees; nothing downstream reads
the YAML file again.  Key material is held with ``repr=False`` and never
serialised into a plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from pydantic import Field

from reconciler.errors import IncusImagesError
from reconciler.model.base import Frozen
from reconciler.model.desired import ImageType
from reconciler.model.keys import EntryKey
from reconciler.redact import has_userinfo

DEFAULT_OWNER = "incus-images"
CLUSTER_SERVER_KEYS = ("cluster.images_minimal_replica",)
"""``server:`` keys that only a cluster has a use for: ``plan`` refuses them for a
standalone daemon (the daemon itself would store them and never act on them)."""


class RemoteSpec(Frozen):
    """A remote image server, by the name the file gives it."""

    name: str
    url: str
    protocol: Literal["simplestreams", "incus"]
    certificate: str | None = Field(default=None, repr=False)
    """PEM text; trusted for TLS and handed to the daemon as ``source.certificate``."""

    @property
    def daemon_can_pull(self) -> bool:
        """Whether the daemon may be asked to pull from this remote.

        Not a simplestreams remote whose URL carries ``user:password@``: the daemon
        records ``source.server`` as the image's update source (``incus image info``
        shows it), so it would need, store and show the credentials.  The tool
        fetches such builds itself and uploads them.  An incus remote serves public
        images without HTTP authentication: the daemon is handed its URL without the
        userinfo, as every output shows it (:mod:`reconciler.redact`).
        """
        return self.protocol != "simplestreams" or not has_userinfo(self.url)


class TargetSpec(Frozen):
    """An image store.  ``url`` is ``unix:///path`` or ``https://host:port``.

    ``urls`` lists every address of a target declared with ``urls:`` (members of one
    cluster, tried in order; ``url`` is the first of them); it is empty for a target
    declared with ``url:``.  :attr:`addresses` is what to try, either way.
    """

    name: str
    url: str
    urls: tuple[str, ...] = ()
    project: str = "default"
    client_cert: str | None = Field(default=None, repr=False)
    client_key: str | None = Field(default=None, repr=False)
    server_cert: str | None = Field(default=None, repr=False)

    @property
    def addresses(self) -> tuple[str, ...]:
        """The URLs to try, in order (one unless the target was declared with ``urls:``)."""
        return self.urls or (self.url,)


class AliasDecl(Frozen):
    """A local alias an entry declares."""

    name: str
    description: str = ""


class EntrySpec(Frozen):
    """One image entry for one target, with defaults applied.

    Identity is :meth:`key`, an :class:`~reconciler.model.keys.EntryKey`;
    ``architecture`` is the canonical Incus name or None, meaning the target's host
    architecture.
    """

    target: str
    source: str
    remote: str
    remote_alias: str
    type: ImageType = "container"
    architecture: str | None = None
    fingerprint: str | None = None
    aliases: tuple[AliasDecl, ...] = ()
    auto_update: bool = False
    public: bool = False
    profiles: tuple[str, ...] = ("default",)
    properties: dict[str, str] = Field(default_factory=dict)
    expires_at: datetime | None = None
    expires_after_days: int | None = None

    @property
    def pinned(self) -> bool:
        return self.fingerprint is not None

    def key(self, host_architecture: str) -> EntryKey:
        """The entry's identity on its target, whose host architecture is given."""
        return EntryKey(self.target, self.source, self.type,
                        self.architecture or host_architecture)


class CachedPolicy(Frozen):
    """``None`` days means keep cached images (the default)."""

    delete_unused_after_days: int | None = None


class PolicySpec(Frozen):
    prune: bool = True
    alias_conflicts: Literal["fail", "take"] = "fail"
    cached: CachedPolicy = Field(default_factory=CachedPolicy)


class Config(Frozen):
    """The whole validated desired state.

    ``entries`` holds one :class:`EntrySpec` per (image entry, target), in file
    order.  ``digest`` is the SHA-256 of the file's bytes.
    """

    path: str
    digest: str
    owner: str = DEFAULT_OWNER
    remotes: dict[str, RemoteSpec] = Field(default_factory=dict)
    targets: dict[str, TargetSpec] = Field(default_factory=dict)
    server: dict[str, str] = Field(default_factory=dict)
    policy: PolicySpec = Field(default_factory=PolicySpec)
    entries: tuple[EntrySpec, ...] = ()

    def check_targets(self, names: Sequence[str]) -> list[str]:
        """``names`` without repeats, in order; every name must be a declared target."""
        wanted = list(dict.fromkeys(names))
        unknown = [t for t in wanted if t not in self.targets]
        if unknown:
            listed = ", ".join(repr(t) for t in unknown)
            declared = ", ".join(self.targets) or "none"
            raise IncusImagesError(
                f"unknown target{'s' if len(unknown) > 1 else ''} {listed} "
                f"(the file declares: {declared})")
        return wanted

    def entries_for(self, target: str) -> tuple[EntrySpec, ...]:
        return tuple(e for e in self.entries if e.target == target)
