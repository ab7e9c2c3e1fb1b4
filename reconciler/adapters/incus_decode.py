"""The Incus daemon's JSON, turned into the tool's values: pure, no I/O.

``reconciler.adapters.incus`` sends the requests and hands the answers' ``metadata``
here; ``reconciler.adapters.remotes.incus`` does the same for another server's public
listing.  Everything Incus-specific about reading those answers lives here, once:

* Times: ``0001-01-01T00:00:00Z`` (Go's zero time) is "never set", and an expiry of
  ``1970-01-01T00:00:00Z`` (what a simplestreams build without ``support_eol`` gets,
  and what clears an expiry) is "no expiry" (:func:`incus_time`, the one place).
* Booleans in a config map read ``"true"``/``"false"``; ``null`` reads ``""``.
* ``SERVER_DEFAULTS``: the value the daemon uses for an ``images.*`` server key it
  does not list in its config.
* Garbage in an optional field reads as its empty value, never as a crash.

Invariant: no function here imports ``requests`` or talks to anything.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from reconciler.model.observed import (
    ClusterMember,
    ObservedAlias,
    ObservedImage,
    Profile,
    UpdateSource,
)
from reconciler.model.times import parse_rfc3339, rfc3339

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CLEAR_EXPIRY = "1970-01-01T00:00:00Z"
"""What clears ``expires_at``: the daemon ignores a zero time."""

SERVER_DEFAULTS: dict[str, str] = {
    "images.auto_update_interval": "6",
    "images.auto_update_cached": "true",
    "images.remote_cache_expiry": "10",
    "images.compression_algorithm": "gzip",
    "cluster.images_minimal_replica": "3",
}
"""The daemon's value of a server key it does not list in its config."""


def incus_time(value: datetime, *, epoch_is_none: bool) -> datetime | None:
    """``value`` as Incus means it: the zero time is None, and so (``epoch_is_none``)
    is any time at or before the epoch.  The one place these rules live."""
    if value.year <= 1:
        return None
    if epoch_is_none and value <= EPOCH:
        return None
    return value


def parse_time(text: object, *, expiry: bool = False) -> datetime | None:
    """An Incus timestamp; the zero time (and for ``expiry`` the epoch) is None, as is
    anything that is not an RFC 3339 time."""
    if not isinstance(text, str) or not text:
        return None
    try:
        value = parse_rfc3339(text)
    except ValueError:
        return None
    return incus_time(value, epoch_is_none=expiry)


def format_time(value: datetime | None) -> str:
    """RFC 3339 in UTC; None is the epoch, which clears an expiry."""
    return CLEAR_EXPIRY if value is None else rfc3339(value)


def config_value(value: object) -> str:
    """One value of a config map as the daemon means it (``true``/``false``; null is "")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def config_map(value: object) -> dict[str, str]:
    """A ``config`` object (server, project, profile) as strings; anything else is empty."""
    if not isinstance(value, Mapping):
        return {}
    return {str(k): config_value(v) for k, v in value.items()}


def image_from_api(data: object) -> ObservedImage:
    """Normalise one ``Image`` object of the API (see ``reconciler.model.observed``).

    Fields of the wrong type read as absent; no object, or one without a fingerprint
    (64 hexadecimal digits), is a ``ValueError``: nothing can be said of it.
    """
    if not isinstance(data, Mapping):
        raise ValueError("no image")
    fingerprint = data.get("fingerprint")
    if not isinstance(fingerprint, str) or not _FINGERPRINT.fullmatch(fingerprint):
        raise ValueError("an image without a fingerprint")
    aliases = tuple(
        ObservedAlias(name=str(a["name"]), description=str(a.get("description") or ""),
                      target=fingerprint)
        for a in as_list(data.get("aliases")) if isinstance(a, Mapping) and a.get("name")
    )
    properties = {str(k): str(v) for k, v in as_mapping(data.get("properties")).items()
                  if v not in (None, "")}
    size = data.get("size")
    return ObservedImage(
        fingerprint=fingerprint,
        type="virtual-machine" if data.get("type") == "virtual-machine" else "container",
        architecture=str(data.get("architecture") or ""),
        cached=bool(data.get("cached")),
        auto_update=bool(data.get("auto_update")),
        public=bool(data.get("public")),
        profiles=tuple(str(p) for p in as_list(data.get("profiles"))),
        properties=properties,
        expires_at=parse_time(data.get("expires_at"), expiry=True),
        created_at=parse_time(data.get("created_at")),
        uploaded_at=parse_time(data.get("uploaded_at")),
        last_used_at=parse_time(data.get("last_used_at")),
        size=size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else 0,
        update_source=update_source(data.get("update_source")),
        aliases=aliases,
    )


_FINGERPRINT = re.compile(r"[0-9a-f]{64}")


def as_list(value: object) -> list[Any]:
    """``value`` if it is a JSON array, else an empty one: a wrong type reads as absent."""
    return value if isinstance(value, list) else []


def as_mapping(value: object) -> Mapping[Any, Any]:
    """``value`` if it is a JSON object, else an empty one: a wrong type reads as absent."""
    return value if isinstance(value, Mapping) else {}


def _environment(info: Mapping[str, Any]) -> Mapping[str, Any]:
    """``GET /1.0``'s ``environment``; empty when it is not an object."""
    return as_mapping(info.get("environment"))


def update_source(source: object) -> UpdateSource | None:
    """An image's ``update_source``; None when it has none (no ``server``)."""
    if not isinstance(source, Mapping) or not source.get("server"):
        return None
    return UpdateSource(
        server=str(source.get("server") or ""), protocol=str(source.get("protocol") or ""),
        alias=str(source.get("alias") or ""),
        certificate=str(source.get("certificate") or ""),
    )


def images_from_api(listed: object) -> tuple[ObservedImage, ...]:
    """``GET /1.0/images?recursion=1``'s list, by fingerprint."""
    objects = [d for d in listed if isinstance(d, Mapping)] if isinstance(listed, list) else []
    return tuple(sorted((image_from_api(d) for d in objects), key=lambda i: i.fingerprint))


def host_architecture(info: Mapping[str, Any]) -> str:
    """The daemon's own architecture (the first of ``environment.architectures``)."""
    architectures = as_list(_environment(info).get("architectures"))
    return str(architectures[0]) if architectures else ""


def server_version(info: Mapping[str, Any]) -> str:
    return str(_environment(info).get("server_version") or "")


def server_fingerprint(info: Mapping[str, Any]) -> str:
    """The daemon's certificate fingerprint; empty when it does not say."""
    return str(_environment(info).get("certificate_fingerprint") or "")


def kernel_cgroup(version: str) -> str | None:
    """``"v2"`` on Incus 7 and later (cgroup v1 support was removed); None when unknown."""
    try:
        return "v2" if int(version.split(".", 1)[0]) >= 7 else None
    except ValueError:
        return None


def images_enabled(project: object) -> bool:
    """Whether a ``GET /1.0/projects/<name>`` metadata has its own image store: the
    daemon's own reading of ``features.images`` (``shared.IsTrue``)."""
    config = project.get("config") if isinstance(project, Mapping) else None
    value = config_value(config.get("features.images")) if isinstance(config, Mapping) else ""
    return value.lower() in ("true", "1", "yes", "on")


def profiles_from_api(listed: object) -> dict[str, Profile]:
    """``GET /1.0/profiles?recursion=1``'s list, by name."""
    out: dict[str, Profile] = {}
    for p in listed if isinstance(listed, list) else ():
        if isinstance(p, Mapping) and isinstance(p.get("name"), str):
            devices = {str(k): {str(a): str(b) for a, b in as_mapping(v).items()}
                       for k, v in as_mapping(p.get("devices")).items()}
            out[p["name"]] = Profile(name=p["name"], devices=devices,
                                     config=config_map(p.get("config")))
    return out


def instances_from_api(listed: object) -> dict[str, tuple[str, ...]]:
    """Fingerprint -> names of the instances created from it (``volatile.base_image``),
    from ``GET /1.0/instances?recursion=1``'s list."""
    out: dict[str, list[str]] = {}
    for inst in listed if isinstance(listed, list) else ():
        if not isinstance(inst, Mapping):
            continue
        base = as_mapping(inst.get("config")).get("volatile.base_image")
        if isinstance(base, str) and base and isinstance(inst.get("name"), str):
            out.setdefault(base, []).append(inst["name"])
    return {fp: tuple(sorted(names)) for fp, names in out.items()}


def images_pool(images_volume: str) -> str:
    """The storage pool of ``storage.images_volume`` (``pool/volume``); "" when none."""
    return images_volume.split("/", 1)[0] if "/" in images_volume else ""


def free_bytes(resources: object) -> int | None:
    """Free bytes from ``GET /1.0/storage-pools/<pool>/resources``; None when unknown."""
    space = resources.get("space") if isinstance(resources, Mapping) else None
    if not isinstance(space, Mapping):
        return None
    total, used = space.get("total"), space.get("used")
    if isinstance(total, int) and isinstance(used, int) and total > 0:
        return max(total - used, 0)
    return None


def pool_free_bytes(member_state: object, pool: str) -> int | None:
    """Free bytes of ``pool`` from ``GET /1.0/cluster/members/<name>/state``; None when
    unknown."""
    pools = member_state.get("storage_pools") if isinstance(member_state, Mapping) else None
    return free_bytes(pools.get(pool)) if isinstance(pools, Mapping) else None


def clustered(info: Mapping[str, Any]) -> bool:
    """``environment.server_clustered`` of ``GET /1.0`` (answered even without quorum)."""
    return bool(_environment(info).get("server_clustered"))


def member_name(info: Mapping[str, Any]) -> str:
    """``environment.server_name``: the member a request went through."""
    return str(_environment(info).get("server_name") or "")


def members_from_api(listed: object) -> tuple[ClusterMember, ...]:
    """``GET /1.0/cluster/members?recursion=1``'s list, by name."""
    out = []
    for m in listed if isinstance(listed, list) else ():
        if isinstance(m, Mapping) and isinstance(m.get("server_name"), str):
            out.append(ClusterMember(
                name=m["server_name"], url=str(m.get("url") or ""),
                status=str(m.get("status") or ""), message=str(m.get("message") or ""),
                roles=tuple(str(r) for r in as_list(m.get("roles")))))
    return tuple(sorted(out, key=lambda m: m.name))


def config_etag(config: Mapping[str, str]) -> str:
    """The ETag Incus gives ``GET /1.0`` for server config ``config``.

    The daemon hashes its config map as Go's ``json.Encoder`` writes it: keys
    sorted, compact, ``<``, ``>``, ``&``, U+2028 and U+2029 escaped, other
    characters as UTF-8, and a closing newline; then SHA-256 in hex, quoted.  A
    wrong guess only costs a refused ``If-Match`` (412): the ETag is a hash of the
    content, so it matches only a config equal to the one hashed.
    """
    text = json.dumps(dict(config), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in _GO_JSON_ESCAPES:
        text = text.replace(char, escaped)
    return '"' + hashlib.sha256((text + "\n").encode()).hexdigest() + '"'


_GO_JSON_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))



def aliases_from_api(listed: object) -> tuple[ObservedAlias, ...]:
    """``GET /1.0/images/aliases?recursion=1``'s list, by name."""
    objects = [d for d in listed if isinstance(d, Mapping)] if isinstance(listed, list) else []
    return tuple(sorted((ObservedAlias(name=str(d["name"]),
                                       description=str(d.get("description") or ""),
                                       target=str(d.get("target") or ""))
                         for d in objects if d.get("name")), key=lambda a: a.name))
