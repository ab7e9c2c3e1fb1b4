"""The desired-state file, version 1, exactly as users write it.

These models are the single source of ``schemas/desired-state.schema.json``.
They check shape only (types, enums, patterns, unknown keys); cross-references
(unknown remote or target, duplicate aliases, ...) are checked by
``reconciler.desired.validate``, which turns this file into a
:class:`reconciler.model.config.Config`.

Every field carries a title, a description for a person (what it does, its
default) and examples: that is what an editor shows while the file is written.
A few rules ``validate`` enforces in its own words are also stated in the JSON
Schema only (``json_schema_extra``: URL schemes, the ``server`` keys, pinned
entries without ``auto_update``), so that the schema rejects what the CLI rejects
without the model reporting those problems twice.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from reconciler.model.base import Frozen

OWNER_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
SOURCE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*:[^\s:][^\s]*$"
FINGERPRINT_PATTERN = r"^[0-9a-f]{64}$"
DURATION_PATTERN = r"^[1-9][0-9]*d$"
VARIABLE = r".*\$\{"
"""A value that uses ``${VAR}``: the schema cannot know what it expands to."""
_PORT = (r"(:0*(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}"
         r"|[1-9][0-9]{0,3}))?")
"""An optional port from 1 to 65535."""
_HOST = r"(\[[0-9A-Fa-f:.]+(%[^\]]+)?\]|[^/?#@:\[\]\s]+)"
_REST = r"([/?#].*)?$"
REMOTE_URL_PATTERN = rf"^(https?://([^/?#@\s]*@)?{_HOST}{_PORT}{_REST}|{VARIABLE})"
"""What the schema says of a remote's URL: scheme, host, port (``validate`` also checks
host name lengths and characters)."""
TARGET_URL_PATTERN = rf"^(unix://(/.*)?$|https://{_HOST}{_PORT}{_REST}|{VARIABLE})"
"""What the schema says of a target's URL (``validate`` also checks host names)."""
DAYS_SCHEMA_PATTERN = r"^([1-9][0-9]{0,3}|[12][0-9]{4}|3[0-5][0-9]{3}|36[0-4][0-9]{2}|36500)d$"
"""A number of days from 1 to 36500 (100 years), as ``validate`` takes it."""
PROJECT_SCHEMA_PATTERN = rf"^((?!\.{{1,2}}$)[^\s/_'\x22*]+$|{VARIABLE})"  # \x22: "
"""Incus's project names: not empty, not . or .., no whitespace, none of / _ ' " *."""

ImageType = Literal["container", "virtual-machine"]

_TYPE_DOC = ("container (a system container image) or virtual-machine (a VM image). "
             "Default: container.")
_ARCH_DOC = ("The architecture of the build to keep, in Incus's words (x86_64, aarch64) or "
             "simplestreams' (amd64, arm64). Default: the target's host architecture.")
_PROFILES_DOC = ("The profiles an instance created from the image gets by default. "
                 "Default: [default].")
_PROPERTIES_DOC = ("Image properties to set, merged over the image's own (the keys written "
                   "here win). Default: none.")
_DAYS_DOC = ("How long each build may stay, counted from the build's creation date: a "
             "number of days such as 90d. The daemon deletes the image when it expires. "
             "Default: never.")


class RemoteFile(Frozen):
    """A remote image server that image sources name (``images:debian/12`` names the
    remote ``images``)."""

    model_config = ConfigDict(title="Remote")

    url: str = Field(
        title="Server URL",
        description="The image server's address: an http:// or https:// URL, with a port "
        "when it is not the default one.",
        examples=["https://images.linuxcontainers.org", "https://10.0.0.5:8443"],
        json_schema_extra={"pattern": REMOTE_URL_PATTERN},
    )
    protocol: Literal["simplestreams", "incus"] = Field(
        default="simplestreams",
        title="Protocol",
        description="How the server is read: simplestreams (a static image index, such as "
        "images.linuxcontainers.org) or incus (the public images of another Incus "
        "server). Default: simplestreams.",
        examples=["simplestreams", "incus"],
    )
    certificate: str | None = Field(
        default=None,
        title="Server certificate",
        description="The certificate to trust for this server, as PEM text or a path "
        "relative to this file. It is trusted for TLS by this tool and handed to the "
        "daemon as source.certificate. Default: the system's trusted CAs.",
        examples=["certs/internal.crt", "${INTERNAL_REMOTE_CERT}"],
    )


class TargetFile(Frozen):
    """An image store to reconcile: an Incus daemon and one of its projects."""

    model_config = ConfigDict(
        title="Target",
        json_schema_extra={"dependentRequired": {"client_cert": ["client_key"],
                                                 "client_key": ["client_cert"]}},
    )

    url: str | None = Field(
        default=None,
        title="Daemon URL",
        description="Where the daemon listens: unix:///path/to/unix.socket or "
        "https://host:port. Default: the local daemon's socket ($INCUS_SOCKET, else "
        "$INCUS_DIR/unix.socket, else /var/lib/incus/unix.socket).",
        examples=["https://incus-prod.example.com:8443", "unix:///var/lib/incus/unix.socket"],
        json_schema_extra={"pattern": TARGET_URL_PATTERN},
    )
    urls: list[str] | None = Field(
        default=None, min_length=1,
        title="Cluster member URLs",
        description="Instead of url: the addresses of members of one cluster, tried in "
        "order; the first that answers is used for the whole run (plan, apply and status "
        "say which). Each is checked like url. Default: none (url is used).",
        examples=[["https://m1.example.com:8443", "https://m2.example.com:8443"]],
        json_schema_extra={"items": {"type": "string", "pattern": TARGET_URL_PATTERN}},
    )
    project: str = Field(
        default="default",
        title="Project",
        description="The Incus project whose images are managed. A project with "
        "features.images=false uses the default project's images. Default: default.",
        examples=["default", "web"],
        json_schema_extra={"pattern": PROJECT_SCHEMA_PATTERN},
    )
    client_cert: str | None = Field(
        default=None,
        title="Client certificate",
        description="The client certificate this tool presents to an https:// daemon, as "
        "PEM text or a path relative to this file; give client_key with it. Usually "
        "${VAR} from a CI secret. Default: none.",
        examples=["${INCUS_PROD_CERT}", "certs/client.crt"],
    )
    client_key: str | None = Field(
        default=None,
        title="Client key",
        description="The private key of client_cert, as PEM text or a path relative to "
        "this file. Usually ${VAR} from a CI secret. Default: none.",
        examples=["${INCUS_PROD_KEY}", "certs/client.key"],
    )
    server_cert: str | None = Field(
        default=None,
        title="Daemon certificate",
        description="The daemon's certificate to trust, as PEM text or a path relative to "
        "this file (for a daemon whose certificate no CA signed). Default: the system's "
        "trusted CAs.",
        examples=["certs/prod-server.crt", "${INCUS_PROD_SERVER_CERT:-certs/prod.crt}"],
    )


AliasName = Annotated[str, Field(
    min_length=1, max_length=64, title="Alias name",
    description="A local alias: the name instances are created from (incus launch "
    "NAME), on every target of the entry.",
    examples=["debian-12"],
)]


class AliasFile(Frozen):
    """A local alias with a description."""

    model_config = ConfigDict(title="Alias with a description")

    name: str = Field(
        min_length=1, max_length=64, title="Alias name",
        description="The local alias (1 to 64 characters, no '/' at either end, no "
        "whitespace).",
        examples=["debian/bookworm"],
    )
    description: str = Field(
        default="", title="Alias description",
        description="What incus image alias list shows beside the alias. Default: empty.",
        examples=["Debian 12, kept fresh from the public server"],
    )


AliasItem = AliasName | AliasFile


class CachedPolicyFile(Frozen):
    """Delete daemon-cached images (pulled by instance creation, owned by nobody) that
    no instance used for a while."""

    model_config = ConfigDict(title="Cached-image cleanup")

    delete_unused_after: str = Field(
        pattern=DURATION_PATTERN, title="Delete unused after",
        description="Delete a cached image when its last use (or, never used, its "
        "upload) is older than this many days, such as 30d.",
        examples=["30d"],
        json_schema_extra={"pattern": DAYS_SCHEMA_PATTERN},
    )


class PolicyFile(Frozen):
    """What the tool may delete and how it treats conflicts."""

    model_config = ConfigDict(title="Policy settings")

    prune: bool = Field(
        default=True, title="Prune",
        description="Delete the images this owner manages that the file no longer "
        "declares. Default: true.",
        examples=[True],
    )
    alias_conflicts: Literal["fail", "take"] = Field(
        default="fail", title="Alias conflicts",
        description="What to do when a declared local alias is held by an image this "
        "owner does not manage: fail (the plan fails and names the holder) or take "
        "(move the alias to this owner's image). Default: fail.",
        examples=["fail", "take"],
    )
    cached: Literal["keep"] | CachedPolicyFile = Field(
        default="keep", title="Cached images",
        description="Daemon-cached images (cached: true, owned by nobody): keep them "
        "(the daemon prunes them after images.remote_cache_expiry days) or "
        "{delete_unused_after: 30d}. Default: keep.",
        examples=["keep", {"delete_unused_after": "30d"}],
    )


class DefaultsFile(Frozen):
    """Values applied to every image entry that does not say otherwise."""

    model_config = ConfigDict(title="Entry defaults")

    type: ImageType | None = Field(default=None, title="Image type",
                                   description=_TYPE_DOC, examples=["container"])
    architecture: str | None = Field(default=None, title="Architecture",
                                     description=_ARCH_DOC, examples=["x86_64", "arm64"])
    auto_update: bool | None = Field(
        default=None, title="Auto-update",
        description="The daemon's own auto_update flag for every entry: it refreshes the "
        "image from its source every images.auto_update_interval hours. Default: false.",
        examples=[True],
    )
    public: bool | None = Field(
        default=None, title="Public",
        description="Whether untrusted clients may see and download the images. "
        "Default: false.",
        examples=[False],
    )
    profiles: list[str] | None = Field(default=None, title="Profiles",
                                       description=_PROFILES_DOC, examples=[["default"]])
    properties: dict[str, str] | None = Field(
        default=None, title="Properties", description=_PROPERTIES_DOC,
        examples=[{"team": "web"}])
    expires_after: str | None = Field(
        default=None, pattern=DURATION_PATTERN, title="Expires after",
        description=_DAYS_DOC, examples=["365d"],
        json_schema_extra={"pattern": DAYS_SCHEMA_PATTERN})


class ImageFile(Frozen):
    """One image to keep: a remote alias, tracked or pinned, with its local aliases."""

    model_config = ConfigDict(
        title="Image entry",
        json_schema_extra={
            "allOf": [
                {"if": {"required": ["fingerprint"]},
                 "then": {"properties": {"auto_update": {"const": False}}}},
                {"not": {"required": ["expires_at", "expires_after"]}},
            ],
        },
    )

    source: str = Field(
        pattern=SOURCE_PATTERN, title="Source",
        description="<remote>:<alias on that remote>, as the incus CLI writes it; the "
        "remote must be declared under remotes.",
        examples=["images:debian/12", "internal:web/base"],
    )
    type: ImageType | None = Field(default=None, title="Image type",
                                   description=_TYPE_DOC, examples=["virtual-machine"])
    architecture: str | None = Field(default=None, title="Architecture",
                                     description=_ARCH_DOC, examples=["x86_64", "aarch64"])
    fingerprint: str | None = Field(
        default=None, pattern=FINGERPRINT_PATTERN, title="Pinned fingerprint",
        description="Pin one exact build: all 64 hex digits of its fingerprint. A pinned "
        "entry never moves and needs auto_update false. Default: none (the entry tracks "
        "its source, or the lock file's build).",
        examples=["5d3c1e0a8b7f4e2d9c6b1a0f3e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d"],
    )
    aliases: list[AliasItem] = Field(
        default_factory=list, title="Local aliases",
        description="Local aliases pointing at the image on every target of the entry: a "
        "name, or {name, description}. Default: none.",
        examples=[["debian-12", {"name": "debian/bookworm", "description": "Debian 12"}]],
    )
    auto_update: bool | None = Field(
        default=None, title="Auto-update",
        description="The daemon's own auto_update flag: it refreshes the image from its "
        "source every images.auto_update_interval hours. Must be false for a pinned "
        "entry. Default: defaults.auto_update, else false.",
        examples=[True],
    )
    public: bool | None = Field(
        default=None, title="Public",
        description="Whether untrusted clients may see and download the image. Default: "
        "defaults.public, else false.",
        examples=[False],
    )
    expires_at: datetime | date | None = Field(
        default=None, title="Expires at",
        description="When the daemon deletes the image: an RFC 3339 time, or a date "
        "meaning 00:00 UTC. Not with expires_after. Default: defaults.expires_after, "
        "else never.",
        examples=["2027-06-30", "2027-06-30T12:00:00Z"],
    )
    expires_after: str | None = Field(
        default=None, pattern=DURATION_PATTERN, title="Expires after",
        description=_DAYS_DOC + " Not with expires_at.", examples=["90d"],
        json_schema_extra={"pattern": DAYS_SCHEMA_PATTERN})
    profiles: list[str] | None = Field(
        default=None, title="Profiles",
        description=_PROFILES_DOC.replace("[default].", "defaults.profiles, else [default]."),
        examples=[["default", "web"]])
    properties: dict[str, str] | None = Field(
        default=None, title="Properties",
        description=_PROPERTIES_DOC.replace("none.", "defaults.properties (merged, this "
                                            "entry's keys win)."),
        examples=[{"team": "web", "tier": "base"}])
    targets: list[str] | None = Field(
        default=None, title="Targets",
        description="The targets (names under targets) that keep this image. Default: "
        "every target.",
        examples=[["local", "prod"]],
    )


def _server_schema(schema: dict[str, Any]) -> None:
    """The ``server`` mapping as ``validate`` takes it: known keys only (see
    :data:`SERVER_SETTINGS`)."""
    schema.pop("additionalProperties", None)
    schema["propertyNames"] = {"enum": sorted(SERVER_SETTINGS)}
    schema["properties"] = {key: dict(spec) for key, spec in sorted(SERVER_SETTINGS.items())}
    schema["additionalProperties"] = False


_WHOLE = {"anyOf": [{"type": "integer", "minimum": 1 - 10**18, "maximum": 10**18 - 1},
                    {"type": "string", "pattern": rf"^(-?[0-9]{{1,18}}$|{VARIABLE})"}]}
_BOOLEAN = {"anyOf": [{"type": "boolean"},
                      {"type": "string", "pattern": rf"^(true$|false$|{VARIABLE})"}]}

SERVER_SETTINGS: dict[str, dict[str, Any]] = {
    "cluster.images_minimal_replica": {
        "anyOf": [{"type": "integer", "minimum": -1, "maximum": 10**18 - 1, "not": {"const": 0}},
                  {"type": "string", "pattern": rf"^(-1$|[1-9][0-9]{{0,17}}$|{VARIABLE})"}],
        "title": "Minimal image replicas",
        "description": "How many cluster members keep a copy of each image (-1: every "
        "member). Clusters only: plan fails on a standalone daemon. Incus default: 3.",
        "examples": [3]},
    "images.auto_update_cached": {
        **_BOOLEAN, "title": "Auto-update cached images",
        "description": "Whether the daemon also auto-updates the images it cached when "
        "instances were created from a remote. Incus default: true.",
        "examples": [True]},
    "images.auto_update_interval": {
        **_WHOLE, "title": "Auto-update interval",
        "description": "Hours between the daemon's checks for newer builds of auto_update "
        "images; 0 turns the checks off. Incus default: 6.",
        "examples": [6]},
    "images.compression_algorithm": {
        "type": "string", "title": "Compression algorithm",
        "pattern": r"^(\s*(bzip2|gzip|lz4|lzma|xz|zstd|pigz|pxz|pzstd|squashfs|none)"
                   rf"(\s+(-[1-9]|--rsyncable))*\s*$|{VARIABLE})",
        "description": "How the daemon compresses images it creates (incus publish), with "
        "optional -1 to -9 or --rsyncable arguments. Incus default: gzip.",
        "examples": ["zstd", "gzip -9"]},
    "images.default_architecture": {
        "type": "string", "title": "Default architecture",
        "description": "The architecture the daemon picks for an image name without one "
        "(x86_64, aarch64, or amd64, arm64). Incus default: the host's.",
        "examples": ["x86_64"]},
    "images.remote_cache_expiry": {
        **_WHOLE, "title": "Remote cache expiry",
        "description": "Days after which the daemon deletes a cached image that no "
        "instance used. Incus default: 10.",
        "examples": [10]},
}
"""The daemon settings the schema lets ``server:`` hold, each with its value's schema.

``reconciler.desired.serverkeys.SERVER_KEYS`` holds the same keys with the checks
``validate`` runs (tests/unit/test_schema_docs.py keeps the two equal)."""


class DesiredStateFile(Frozen):
    """The images an Incus image store must hold, the aliases pointing at them and the
    daemon settings that govern them: what incus-images plan and apply enforce."""

    model_config = ConfigDict(title="incus-images desired state (version 1)")

    version: Literal[1] = Field(
        title="File format version",
        description="The version of this file's format; 1 is the only one. Required.",
        examples=[1],
    )
    owner: str = Field(
        default="incus-images", pattern=OWNER_PATTERN, title="Owner",
        description="Who this file speaks for: 1 to 63 characters of a-z, 0-9 and '-'. "
        "Two files with different owners can share a store: each manages and prunes only "
        "its own images. Default: incus-images.",
        examples=["platform-web"],
    )
    remotes: dict[str, RemoteFile] = Field(
        default_factory=dict, title="Remotes",
        description="The image servers sources come from, by name; every remote a source "
        "names must be declared here. Default: none.",
        examples=[{"images": {"url": "https://images.linuxcontainers.org"}}],
    )
    targets: dict[str, TargetFile] | None = Field(
        default=None, title="Targets",
        description="The image stores to reconcile, by name. Default: one target, local, "
        "the local daemon's socket and project default.",
        examples=[{"local": {}, "prod": {"url": "https://incus-prod.example.com:8443",
                                         "project": "web"}}],
    )
    server: dict[str, str | int | bool] = Field(
        default_factory=dict, title="Server settings",
        description="images.* daemon settings enforced on every target (they are "
        "daemon-wide, not per project). Default: none (the daemon's are left alone).",
        examples=[{"images.auto_update_interval": 6, "images.auto_update_cached": True}],
        json_schema_extra=_server_schema,
    )
    defaults: DefaultsFile = Field(
        default_factory=DefaultsFile, title="Defaults",
        description="Values for every image entry that does not set them itself. "
        "Default: type container, auto_update false, public false, profiles [default].",
        examples=[{"auto_update": True, "profiles": ["default"]}],
    )
    policy: PolicyFile = Field(
        default_factory=PolicyFile, title="Policy",
        description="What the tool may delete and how it treats conflicts. Default: "
        "prune true, alias_conflicts fail, cached keep.",
        examples=[{"prune": True, "alias_conflicts": "fail"}],
    )
    images: list[ImageFile] | None = Field(
        default=None, title="Images",
        description="The images to keep. A missing or empty list means no images: plan "
        "then refuses to delete every image this owner manages unless --allow-empty.",
        examples=[[{"source": "images:debian/12", "aliases": ["debian-12"]}]],
    )
