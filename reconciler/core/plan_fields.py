"""``image.update``: the declared writable fields of an image that is already in the store.

Pure.  Holds the contract's "Writable fields" and "Expiry" rules for a present image;
each field is compared by its own function, and :func:`image_update` gathers them.
"""

from __future__ import annotations

from datetime import datetime

from reconciler.core.builds import iso, same_time
from reconciler.core.plan_changes import Stamp
from reconciler.model.changes import ImageUpdate
from reconciler.model.config import EntrySpec
from reconciler.model.observed import ObservedImage, RecordedImage
from reconciler.model.plan import FieldChange, Writable


def image_update(
    stamp: Stamp, entry: EntrySpec, img: ObservedImage, prior: RecordedImage | None,
    expiry: datetime | None, record: RecordedImage,
) -> ImageUpdate | None:
    """``image.update`` restoring the declared writable fields, or None when they hold.

    ``prior`` is this owner's record of the image (None when it did not manage it yet);
    ``expiry`` the declared expiry.
    """
    auto_update = entry.auto_update and not entry.pinned
    fields = flag_fields(entry, img)
    props = property_changes(entry, img, prior)
    if props:
        fields["properties"] = FieldChange(
            from_={k: img.properties.get(k) for k in props}, to=props)
    target_expiry = expiry_target(img, prior, expiry)
    if not same_time(img.expires_at, target_expiry):
        fields["expires_at"] = FieldChange(from_=iso(img.expires_at), to=iso(target_expiry))
    if not fields:
        return None
    writable = Writable(auto_update=auto_update, public=entry.public, profiles=entry.profiles,
                        properties=props, expires_at=target_expiry)
    return stamp.update("declared fields differ", fingerprint=img.fingerprint,
                        source=entry.source, fields=fields, writable=writable, record=record)


def flag_fields(entry: EntrySpec, img: ObservedImage) -> dict[str, FieldChange]:
    """``auto_update`` (never on a pinned entry), ``public`` and ``profiles`` that differ,
    in that order."""
    auto_update = entry.auto_update and not entry.pinned
    fields: dict[str, FieldChange] = {}
    if img.auto_update != auto_update:
        fields["auto_update"] = FieldChange(from_=img.auto_update, to=auto_update)
    if img.public != entry.public:
        fields["public"] = FieldChange(from_=img.public, to=entry.public)
    if tuple(img.profiles) != tuple(entry.profiles):
        fields["profiles"] = FieldChange(from_=list(img.profiles), to=list(entry.profiles))
    return fields


def property_changes(entry: EntrySpec, img: ObservedImage,
                     prior: RecordedImage | None) -> dict[str, str | None]:
    """Properties to write: declared keys must carry their values; keys this owner set
    before (``prior``) and no longer declares are removed (None); other keys are left
    alone.  Declared keys first, each group sorted."""
    props: dict[str, str | None] = {}
    for key, value in sorted(entry.properties.items()):
        if img.properties.get(key) != value:
            props[key] = value
    for key in sorted(set(prior.properties if prior else ()) - set(entry.properties)):
        if key in img.properties:
            props[key] = None
    return props


def expiry_target(img: ObservedImage, prior: RecordedImage | None,
                  expiry: datetime | None) -> datetime | None:
    """The expiry the image should carry: a declared one; None when this owner wrote one
    and the file dropped it; else the image's own (one the daemon took from the remote
    is left alone)."""
    if expiry is not None:
        return expiry
    if prior is not None and prior.expires_at:
        return None
    return img.expires_at
