"""Turn a valid :class:`DesiredStateFile` into a :class:`Config`: defaults applied.

Only called once every check passed, so nothing here reports problems: an
architecture is known, a duration matches ``Nd``, every certificate was read
into :class:`Materials`.

Merging, entry by entry: the entry's value, else ``defaults``, else the
built-in value (type container, auto_update false, public false, profiles
[default], no properties).  ``defaults.properties`` lie under the entry's (the
entry's keys win).  A pinned entry never auto-updates, whatever ``defaults``
say.  An entry's ``expires_at`` replaces a ``defaults.expires_after``.

Targets: none declared (``targets`` absent, null or ``{}``) means exactly one,
``local``; a target without ``url`` (or with a bare ``unix://``) is the local
daemon's socket, found as the incus client finds it.  Entries come out in file
order, and within an entry in the order of its ``targets`` (default: every
target, in file order).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TypeVar

from reconciler.desired.fieldvalues import parse_days, server_value, target_url
from reconciler.desired.yamlsource import YPath
from reconciler.model import arch
from reconciler.model.config import (
    AliasDecl,
    CachedPolicy,
    Config,
    EntrySpec,
    PolicySpec,
    RemoteSpec,
    TargetSpec,
)
from reconciler.model.desired import (
    AliasFile,
    DefaultsFile,
    DesiredStateFile,
    ImageFile,
    PolicyFile,
)

LOCAL_TARGET = "local"
_T = TypeVar("_T")


@dataclass
class Materials:
    """Values the checks computed and the builder reuses: PEM text by value path."""

    pem: dict[YPath, str] = field(default_factory=dict)


def build_config(
    model: DesiredStateFile,
    materials: Materials,
    environ: Mapping[str, str],
    *,
    path: str,
    digest: str,
) -> Config:
    targets = _targets(model, materials, environ)
    entries: list[EntrySpec] = []
    for image in model.images or []:
        names = list(targets) if image.targets is None else list(dict.fromkeys(image.targets))
        entries.extend(_entry(image, model.defaults, name) for name in names)
    return Config(
        path=path,
        digest=digest,
        owner=model.owner,
        remotes={
            name: RemoteSpec(
                name=name,
                url=remote.url,
                protocol=remote.protocol,
                certificate=materials.pem.get(("remotes", name, "certificate")),
            )
            for name, remote in model.remotes.items()
        },
        targets=targets,
        server={key: server_value(value) for key, value in model.server.items()},
        policy=_policy(model.policy),
        entries=tuple(entries),
    )


def _targets(
    model: DesiredStateFile, materials: Materials, environ: Mapping[str, str]
) -> dict[str, TargetSpec]:
    if not model.targets:
        return {LOCAL_TARGET: TargetSpec(name=LOCAL_TARGET, url=target_url(None, environ))}
    out: dict[str, TargetSpec] = {}
    for name, target in model.targets.items():
        base: YPath = ("targets", name)
        urls = tuple(target_url(u, environ) for u in target.urls or ())
        out[name] = TargetSpec(
            name=name,
            url=urls[0] if urls else target_url(target.url, environ),
            urls=urls,
            project=target.project,
            client_cert=materials.pem.get((*base, "client_cert")),
            client_key=materials.pem.get((*base, "client_key")),
            server_cert=materials.pem.get((*base, "server_cert")),
        )
    return out


def _policy(policy: PolicyFile) -> PolicySpec:
    days = None if policy.cached == "keep" else parse_days(policy.cached.delete_unused_after)
    return PolicySpec(
        prune=policy.prune,
        alias_conflicts=policy.alias_conflicts,
        cached=CachedPolicy(delete_unused_after_days=days),
    )


def _expires_at(value: datetime | date | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value  # already aware UTC: validate normalised it
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def _entry(image: ImageFile, defaults: DefaultsFile, target: str) -> EntrySpec:
    remote, remote_alias = image.source.split(":", 1)
    machine = image.architecture or defaults.architecture
    expires_after = image.expires_after
    if expires_after is None and image.expires_at is None:
        expires_after = defaults.expires_after
    if image.fingerprint is not None:
        auto_update = False
    else:
        auto_update = _first(image.auto_update, defaults.auto_update, False)
    return EntrySpec(
        target=target,
        source=image.source,
        remote=remote,
        remote_alias=remote_alias,
        type=image.type or defaults.type or "container",
        architecture=arch.canonical(machine) if machine is not None else None,
        fingerprint=image.fingerprint,
        aliases=tuple(
            AliasDecl(name=a.name, description=a.description)
            if isinstance(a, AliasFile)
            else AliasDecl(name=a)
            for a in image.aliases
        ),
        auto_update=auto_update,
        public=_first(image.public, defaults.public, False),
        profiles=tuple(_first(image.profiles, defaults.profiles, ["default"])),
        properties={**(defaults.properties or {}), **(image.properties or {})},
        expires_at=_expires_at(image.expires_at),
        expires_after_days=parse_days(expires_after) if expires_after else None,
    )


def _first(*values: _T | None) -> _T:
    for value in values:
        if value is not None:
            return value
    raise ValueError("no value")  # unreachable: the last value is a built-in default
