"""What a target image store holds, read with a constant number of list calls.

Values are normalised on the way in: ``expires_at`` of ``0001-01-01`` or
``1970-01-01`` reads as None, empty property values do not exist, profile
order is kept as the daemon gives it.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from reconciler.model.base import Frozen, Stored
from reconciler.model.desired import ImageType

INVENTORY_PREFIX = "user.incus-images."


class UpdateSource(Frozen):
    """The source the daemon recorded for auto-update (``update_source``)."""

    server: str
    protocol: str
    alias: str
    certificate: str = Field(default="", repr=False)


class ObservedAlias(Frozen):
    name: str
    description: str = ""
    target: str


class ObservedImage(Frozen):
    fingerprint: str
    type: ImageType = "container"
    architecture: str = ""
    cached: bool = False
    auto_update: bool = False
    public: bool = False
    profiles: tuple[str, ...] = ("default",)
    properties: dict[str, str] = Field(default_factory=dict)
    expires_at: datetime | None = None
    created_at: datetime | None = None
    uploaded_at: datetime | None = None
    last_used_at: datetime | None = None
    size: int = 0
    update_source: UpdateSource | None = None
    aliases: tuple[ObservedAlias, ...] = ()


class Provenance(Stored):
    """Where a desired-state file came from: its git commit, repository and path.

    ``repository`` is the ``origin`` remote's URL with any credentials removed, or
    the repository's top-level directory when it has no ``origin``.  ``path`` is the
    file relative to that top level (``/`` separated).  ``dirty`` is true when the
    file differs from (or is not in) the commit, so the commit alone does not
    describe it.  Informational only: the planner never compares it.
    """

    commit: str
    """The full hash of the git commit."""
    repository: str
    """The origin remote's URL without credentials, or the repository's top directory."""
    path: str
    """The file, relative to the repository's top level. Example: "images.yaml"."""
    dirty: bool = False
    """True when the file differs from (or is not in) the commit."""


class RecordedImage(Stored):
    """What an owner's inventory says about one image it manages.

    ``aliases`` are the local aliases this owner manages on it; ``properties``
    the property keys this owner set (so it can remove the ones the file drops).
    ``provenance`` says which commit of which file declared it when an apply last
    wrote this record (None outside git); it never makes a plan change anything.
    """

    source: str
    """The entry's source. Example: "images:debian/12"."""
    type: ImageType = "container"
    """container or virtual-machine."""
    architecture: str = ""
    """The canonical architecture of the build. Example: "x86_64"."""
    aliases: tuple[str, ...] = ()
    """The local aliases this owner manages on the image."""
    properties: tuple[str, ...] = ()
    """The property keys this owner set on the image."""
    expires_at: bool = False
    """True when this owner wrote the image's ``expires_at`` (so dropping it clears it)."""
    provenance: Provenance | None = None
    """Which commit of which file declared the image at the last apply (null outside git)."""


class PendingPull(Stored):
    """A pull by alias this owner started and has not yet settled.

    The daemon's hour-old index can make it land another build than planned,
    which apply deletes at once; a kill between the two would leave that build
    as nobody's.  While this marker stands, an image that is in no record, whose
    ``update_source`` is ``server`` + ``alias`` and that was not among ``before``
    (the fingerprints with that source when the pull started) is this owner's,
    described by ``record``.
    """

    server: str
    """The URL of the server pulled from."""
    alias: str
    """The remote alias pulled."""
    record: RecordedImage
    """What the inventory records about the build once it lands."""
    before: tuple[str, ...] = ()
    """The fingerprints that already had this update source when the pull started."""


class Inventory(Stored):
    """One owner's ownership record for one effective project of one daemon.

    Stored as JSON in the daemon's server config under :func:`inventory_key`,
    updated with compare-and-swap on ``GET /1.0``'s ETag.  It survives the
    daemon's auto-update, which wipes image properties.
    """

    owner: str
    """The owner the record belongs to."""
    project: str
    """The effective project it covers."""
    images: dict[str, RecordedImage] = Field(default_factory=dict)
    """Fingerprint -> what the owner records about that image."""
    server: dict[str, str] = Field(default_factory=dict)
    """``images.*`` server settings this owner enforces, with their values."""
    pending: tuple[PendingPull, ...] = ()
    """Pulls by alias started and not yet settled."""

    @property
    def aliases(self) -> frozenset[str]:
        return frozenset(a for rec in self.images.values() for a in rec.aliases)


def inventory_key(owner: str, project: str) -> str:
    """The server config key of ``owner``'s inventory for ``project``."""
    return f"{INVENTORY_PREFIX}{owner}.{project}"


class Profile(Frozen):
    """A profile of the target's project: its config and devices, as the daemon lists them."""

    name: str
    config: dict[str, str] = Field(default_factory=dict)
    devices: dict[str, dict[str, str]] = Field(default_factory=dict)


class ClusterMember(Frozen):
    """One member of a clustered target, as ``GET /1.0/cluster/members?recursion=1`` lists it.

    ``status`` is the daemon's word (``Online``, ``Offline``, ``Evacuated``, ...).
    ``reachable`` is whether the member's ``url`` accepted a connection when the
    target was observed (None when not checked); a member killed seconds ago still
    shows ``Online`` for ``cluster.offline_threshold`` (20 s), so only both together
    say it is healthy.  ``images_free_bytes`` is that member's free image space where
    known (``GET /1.0/cluster/members/<name>/state``), else None.
    """

    name: str
    url: str = ""
    status: str = "Online"
    message: str = ""
    roles: tuple[str, ...] = ()
    reachable: bool | None = None
    images_free_bytes: int | None = None

    @property
    def healthy(self) -> bool:
        """Online and, where checked, accepting connections."""
        return self.status == "Online" and self.reachable is not False


class BrokenCopy(Frozen):
    """An image the store lists whose files one member cannot serve.

    Found by ``--verify``: an export of ``fingerprint`` through ``member`` answered an
    error before any byte of the image (the record claims a copy the member lacks).
    ``member`` is "" on a standalone daemon; ``detail`` is the daemon's own words.
    """

    fingerprint: str
    member: str = ""
    detail: str = ""


class Verification(Frozen):
    """What ``--verify`` found on one target: the broken copies of the images it checked,
    the members it checked, and the members it could not check, each with why
    (``unchecked``: member name to reason).  An image is checked through every member
    in ``checked``; none is broken where ``broken`` does not say so.
    """

    fingerprints: tuple[str, ...] = ()
    checked: tuple[str, ...] = ()
    unchecked: dict[str, str] = Field(default_factory=dict)
    broken: tuple[BrokenCopy, ...] = ()

    def broken_members(self, fingerprint: str) -> tuple[str, ...]:
        """The members (sorted) through which ``fingerprint`` is broken."""
        return tuple(sorted({b.member for b in self.broken if b.fingerprint == fingerprint}))


class TargetState(Frozen):
    """A snapshot of one target.

    ``project`` is the project the file names; ``effective_project`` the one
    whose images it really uses (``default`` when ``features.images=false``).
    ``server_config`` holds the daemon's server config and ``inventories`` every
    owner's record for the effective project: a store's ``observe`` reports the
    whole config with no inventories, and ``core.inventory.with_inventories`` moves
    the records out of the config into ``inventories`` (the planner and the
    pipeline work on states so read).
    ``server_defaults`` are the values the daemon uses for server keys it does not
    list in its config (the store knows them; the core compares against
    ``server_config``, else these, else "").
    ``config_etag`` is ``GET /1.0``'s ETag at observation time.
    ``profiles`` are the project's profiles (for requirement checks); ``instances``
    maps a fingerprint to the names of the project's instances created from it
    (``volatile.base_image``); ``images_free_bytes`` is the free space of the image
    store where the daemon exposes it (``storage.images_volume``), else None.
    ``kernel_cgroup`` is ``"v2"`` when the host cannot run cgroup v1 images, None
    when the daemon does not say.  ``server_fingerprint`` identifies the daemon (its
    certificate's fingerprint; empty when it does not say), so two targets that
    reach one image store can be told apart from two that do not.
    ``clustered`` is the daemon's ``environment.server_clustered``; ``members`` are the
    cluster's members (empty when not clustered), ``member`` the name of the one
    this observation went through, ``url`` the address it was reached at.
    ``verification`` is what ``--verify`` found (None: copies were not verified).
    ``passed_over`` lists the addresses of a target declared with ``urls:`` that were
    tried before ``url`` and did not answer, each with why, in the order tried.
    """

    target: str
    project: str
    effective_project: str
    host_architecture: str
    server_version: str = ""
    server_config: dict[str, str] = Field(default_factory=dict)
    server_defaults: dict[str, str] = Field(default_factory=dict)
    config_etag: str = ""
    inventories: dict[str, Inventory] = Field(default_factory=dict)
    images: tuple[ObservedImage, ...] = ()
    profiles: dict[str, Profile] = Field(default_factory=dict)
    instances: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    images_free_bytes: int | None = None
    kernel_cgroup: str | None = None
    server_fingerprint: str = ""
    clustered: bool = False
    members: tuple[ClusterMember, ...] = ()
    member: str = ""
    url: str = ""
    verification: Verification | None = None
    passed_over: dict[str, str] = Field(default_factory=dict)

    def unhealthy_members(self) -> tuple[ClusterMember, ...]:
        """The members that are not Online or did not accept a connection."""
        return tuple(m for m in self.members if not m.healthy)

    def image(self, fingerprint: str) -> ObservedImage | None:
        for img in self.images:
            if img.fingerprint == fingerprint:
                return img
        return None

    def alias_targets(self) -> dict[str, ObservedAlias]:
        return {a.name: a for img in self.images for a in img.aliases}
