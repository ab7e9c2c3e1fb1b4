"""Small builders for unit tests of the pure core: catalogs, configs, images."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from reconciler.model.config import AliasDecl, Config, EntrySpec, PolicySpec, RemoteSpec, TargetSpec
from reconciler.model.observed import ObservedImage
from reconciler.model.remote import RemoteCatalog, RemoteFile, RemoteImage

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
REMOTE_URL = "https://images.test"


def fp_of(*parts: object) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def build(alias: str, serial: int, *, type_: str = "container", arch: str = "x86_64",
          support_eol: datetime | None = None,
          requirements: dict[str, str] | None = None) -> RemoteImage:
    fp = fp_of(alias, serial, type_, arch)
    created = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=serial)
    return RemoteImage(
        fingerprint=fp, type=type_, architecture=arch,  # type: ignore[arg-type]
        remote_architecture={"x86_64": "amd64", "aarch64": "arm64"}.get(arch, arch),
        version=f"{created:%Y%m%d}_0000", created_at=created, size=1000 + serial,
        files=(RemoteFile(ftype="incus.tar.xz", path=f"m/{fp}", sha256="a" * 64, size=10),
               RemoteFile(ftype="root.tar.xz", path=f"r/{fp}", sha256="b" * 64, size=990)),
        aliases=(alias,), properties={"os": alias.split("/")[0], "serial": str(serial)},
        expires_at=support_eol, requirements=requirements or {},
    )


def catalog(*builds: RemoteImage, name: str = "r", url: str = REMOTE_URL) -> RemoteCatalog:
    """A catalog where, per (alias, type, arch), the highest serial wins the alias."""
    table: dict[str, str] = {}
    won: dict[str, list[str]] = {}
    for b in sorted(builds, key=lambda b: b.version, reverse=True):
        alias = b.aliases[0]
        key = RemoteCatalog.alias_key(alias, b.type, b.architecture)
        if key not in table:
            table[key] = b.fingerprint
            won.setdefault(b.fingerprint, []).append(alias)
    images = tuple(b.model_copy(update={"aliases": tuple(won.get(b.fingerprint, ()))})
                   for b in builds)
    return RemoteCatalog(remote=name, url=url, protocol="simplestreams", images=images,
                         alias_table=table)


def entry(source: str = "r:deb/1", *aliases: str, target: str = "local", **kw: object) -> EntrySpec:
    remote, alias = source.split(":", 1)
    return EntrySpec.model_validate({
        "target": target, "source": source, "remote": remote, "remote_alias": alias,
        "aliases": tuple(AliasDecl(name=a) for a in aliases), **kw})


def config(*entries: EntrySpec, owner: str = "incus-images", targets: tuple[str, ...] = ("local",),
           server: dict[str, str] | None = None, **policy: object) -> Config:
    return Config(
        path="images.yaml", digest="0" * 64, owner=owner,
        remotes={"r": RemoteSpec(name="r", url=REMOTE_URL, protocol="simplestreams")},
        targets={t: TargetSpec(name=t, url=f"unix:///run/{t}.socket") for t in targets},
        server=server or {}, policy=PolicySpec.model_validate(policy), entries=entries)


def image(fp: str, **kw: object) -> ObservedImage:
    return ObservedImage.model_validate({"fingerprint": fp, **kw})
