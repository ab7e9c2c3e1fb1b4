"""The public images of another Incus server, from ``GET /1.0/images?recursion=1``.

Pure: the adapter fetches the listing (one request, no client certificate, so
only public images of the default project) and passes its ``metadata`` list here.

Invariants:

* One :class:`RemoteImage` per listed image, in listing order; images with an
  architecture or type Incus does not know are skipped.
* Alias table: each alias of an image is keyed with that image's own type and
  canonical architecture (an Incus alias names exactly one image).
* ``files`` is empty: an Incus server exports images, it does not list files.
* ``expires_at`` and ``created_at`` of ``0001-01-01`` / ``1970-01-01`` read as None.
* Garbage raises :class:`RemoteError` naming the remote.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import NoReturn

from reconciler.adapters.incus_decode import incus_time
from reconciler.adapters.remotes.simplestreams import size_problem
from reconciler.errors import RemoteError
from reconciler.model.arch import canonical
from reconciler.model.config import RemoteSpec
from reconciler.model.desired import ImageType
from reconciler.model.fingerprint import short_fingerprint
from reconciler.model.remote import RemoteCatalog, RemoteImage
from reconciler.model.times import parse_rfc3339
from reconciler.redact import without_userinfo

LISTING_PATH = "1.0/images?recursion=1"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")

_Fail = Callable[[str], NoReturn]
"""An error callback: raises a RemoteError describing its argument."""


def build_catalog(remote: RemoteSpec, images_json: Sequence[object]) -> RemoteCatalog:
    """A catalog of the listed images; see the module docstring for the rules."""
    if not isinstance(images_json, list | tuple):
        raise RemoteError(remote.name, f"{LISTING_PATH}: the image list is not a list")
    images: list[RemoteImage] = []
    alias_table: dict[str, str] = {}
    for number, raw in enumerate(images_json):
        parsed = _image(remote.name, number, raw)
        if parsed is None:
            continue
        image, names = parsed
        won: list[str] = []
        for name in names:
            key = RemoteCatalog.alias_key(name, image.type, image.architecture)
            if key not in alias_table:
                alias_table[key] = image.fingerprint
                won.append(name)
        images.append(image.model_copy(update={"aliases": tuple(won)}))
    return RemoteCatalog(
        remote=remote.name,
        url=without_userinfo(remote.url),
        protocol="incus",
        images=tuple(images),
        alias_table=alias_table,
    )


def _image(remote: str, number: int, raw: object) -> tuple[RemoteImage, list[str]] | None:
    """One listed image and its alias names, None if Incus would not know it."""
    where = f"image #{number + 1}"

    def fail(what: str) -> NoReturn:
        raise RemoteError(remote, f"{LISTING_PATH}: {where}: {what}")

    if not isinstance(raw, dict):
        fail("is not an object")
    fp = raw.get("fingerprint")
    if not isinstance(fp, str) or not _SHA256.match(fp):
        fail("'fingerprint' is not 64 lowercase hex digits")
    where = f"image {short_fingerprint(fp)}"
    raw_arch = raw.get("architecture")
    if not isinstance(raw_arch, str):
        fail("has no 'architecture'")
    raw_type = raw.get("type") or "container"
    properties = raw.get("properties") or {}
    if not isinstance(properties, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in properties.items()
    ):
        fail("'properties' is not a map of strings")
    size = raw.get("size", 0)
    if problem := size_problem(size):
        fail(problem)
    aliases = _alias_names(raw.get("aliases"), fail)
    created_at = _time(raw.get("created_at"), fail)
    expires_at = _time(raw.get("expires_at"), fail)
    arch = canonical(raw_arch)
    if arch is None or raw_type not in ("container", "virtual-machine"):
        return None
    type_: ImageType = "virtual-machine" if raw_type == "virtual-machine" else "container"
    props = {k: v for k, v in properties.items() if v}
    image = RemoteImage(
        fingerprint=fp,
        type=type_,
        architecture=arch,
        remote_architecture=raw_arch,
        version=props.get("serial", ""),
        created_at=created_at,
        size=size,
        requirements={
            k.removeprefix("requirements."): v
            for k, v in props.items()
            if k.startswith("requirements.")
        },
        properties=props,
        expires_at=expires_at,
    )
    return image, aliases


def _alias_names(value: object, fail: _Fail) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        fail("'aliases' is not a list")
    names: list[str] = []
    for alias in value:
        name = alias.get("name") if isinstance(alias, dict) else None
        if not isinstance(name, str) or not name:
            fail("an alias has no 'name'")
        names.append(name)
    return names


def _time(value: object, fail: _Fail) -> datetime | None:
    """An RFC 3339 time from the daemon; the zero times mean "none"."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        fail(f"{value!r} is not a time")
    try:
        parsed = parse_rfc3339(value)
    except ValueError:
        fail(f"{value!r} is not an RFC 3339 time")
    normal = incus_time(parsed, epoch_is_none=True)
    return None if normal is None else normal.astimezone(UTC)
