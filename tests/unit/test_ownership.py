"""Who manages which image, decided from the target alone (contract "Ownership").

Mirrors :mod:`reconciler.core.ownership`: an image is owner O's when O's inventory
records its fingerprint; or, recorded by nobody, when its aliases are listed only by
O and the image O recorded under one of them is gone (the daemon's auto-update moved
the alias to a new build); or when it matches a pull by alias O had in flight.
Everything else is nobody's.  An image belongs to at most one owner.
"""

from __future__ import annotations

from reconciler.core.ownership import Attribution, attribute
from reconciler.model.observed import (
    Inventory,
    ObservedAlias,
    ObservedImage,
    PendingPull,
    RecordedImage,
    TargetState,
    UpdateSource,
)

OLD, NEW, OTHER = "a" * 64, "b" * 64, "c" * 64
SERVER = "https://images.test"


def _image(fp: str, *aliases: str, type_: str = "container",
           source_alias: str | None = None) -> ObservedImage:
    source = (UpdateSource(server=SERVER, protocol="simplestreams", alias=source_alias)
              if source_alias else None)
    return ObservedImage(fingerprint=fp, type=type_,
                         aliases=tuple(ObservedAlias(name=a, target=fp) for a in aliases),
                         update_source=source)


def _record(*aliases: str, type_: str = "container") -> RecordedImage:
    return RecordedImage(source="r:deb/1", type=type_,
                         architecture="x86_64", aliases=aliases)


def _state(images: list[ObservedImage], **inventories: Inventory) -> TargetState:
    return TargetState(target="local", project="default", effective_project="default",
                       host_architecture="x86_64", images=tuple(images),
                       inventories=inventories)


def _inv(owner: str, images: dict[str, RecordedImage] | None = None,
         pending: tuple[PendingPull, ...] = ()) -> Inventory:
    return Inventory(owner=owner, project="default", images=images or {}, pending=pending)


def test_a_recorded_fingerprint_is_its_recorder_s() -> None:
    rec = _record("deb")
    attrs = attribute(_state([_image(OLD, "deb")], me=_inv("me", {OLD: rec})))
    assert attrs[OLD] == Attribution("me", rec)


def test_an_image_nobody_records_and_no_alias_ties_is_nobody_s() -> None:
    attrs = attribute(_state([_image(OTHER, "hand")], me=_inv("me", {OLD: _record("deb")})))
    assert attrs[OTHER] == Attribution(None, None)


def test_every_image_is_attributed_and_only_images_in_the_store() -> None:
    """Records of images gone from the store give no attribution of their own."""
    attrs = attribute(_state([_image(NEW)], me=_inv("me", {OLD: _record()})))
    assert set(attrs) == {NEW}


def test_auto_updated_successor_is_the_owner_s_with_its_predecessor_s_record() -> None:
    """The daemon moved alias ``deb`` from the recorded (now deleted) OLD to NEW."""
    rec = _record("deb")
    attrs = attribute(_state([_image(NEW, "deb")], me=_inv("me", {OLD: rec})))
    assert attrs[NEW] == Attribution("me", rec, successor_of=OLD)


def test_alias_on_another_image_while_the_recorded_one_stays_is_not_a_successor() -> None:
    """Someone added the alias name by hand elsewhere: the recorded image still holds
    its place, so the other image is nobody's."""
    rec = _record("deb")
    attrs = attribute(_state([_image(OLD), _image(NEW, "deb")], me=_inv("me", {OLD: rec})))
    assert attrs[OLD].owner == "me"
    assert attrs[NEW] == Attribution(None, None)


def test_alias_listed_by_two_owners_gives_the_image_to_nobody() -> None:
    attrs = attribute(_state(
        [_image(NEW, "deb")],
        me=_inv("me", {OLD: _record("deb")}), you=_inv("you", {OTHER: _record("deb")})))
    assert attrs[NEW] == Attribution(None, None)


def test_aliases_of_two_owners_on_one_image_give_it_to_nobody() -> None:
    attrs = attribute(_state(
        [_image(NEW, "deb", "alp")],
        me=_inv("me", {OLD: _record("deb")}), you=_inv("you", {OTHER: _record("alp")})))
    assert attrs[NEW].owner is None


def test_a_successor_must_have_the_recorded_type() -> None:
    """A virtual-machine image carrying a container record's alias is not its successor."""
    attrs = attribute(_state([_image(NEW, "deb", type_="virtual-machine")],
                             me=_inv("me", {OLD: _record("deb")})))
    assert attrs[NEW].owner is None


def test_a_record_wins_over_an_alias_another_owner_lists() -> None:
    """Recorded by ``you``; ``me`` lists its alias for a deleted image: still ``you``'s."""
    theirs = _record("x")
    attrs = attribute(_state([_image(NEW, "deb")], me=_inv("me", {OLD: _record("deb")}),
                             you=_inv("you", {NEW: theirs})))
    assert attrs[NEW] == Attribution("you", theirs)


def test_one_fingerprint_in_two_inventories_has_one_owner() -> None:
    """At most one owner per image: the first inventory by owner name."""
    attrs = attribute(_state([_image(OLD)], zed=_inv("zed", {OLD: _record("z")}),
                             abe=_inv("abe", {OLD: _record("a")})))
    assert attrs[OLD].owner == "abe"
    assert attrs[OLD].record == _record("a")


def test_an_in_flight_pull_claims_the_image_it_landed() -> None:
    """A pull by alias the owner started lands an unrecorded image with that source."""
    rec = _record("deb")
    pull = PendingPull(server=SERVER, alias="debian/12", record=rec, before=(OLD,))
    attrs = attribute(_state([_image(OLD, source_alias="debian/12"),
                              _image(NEW, source_alias="debian/12")],
                             me=_inv("me", pending=(pull,))))
    assert attrs[NEW] == Attribution("me", rec, in_flight=True)
    assert attrs[OLD] == Attribution(None, None), "was there before the pull started"


def test_an_in_flight_pull_claims_only_its_own_source() -> None:
    pull = PendingPull(server=SERVER, alias="debian/12", record=_record())
    attrs = attribute(_state([_image(NEW, source_alias="alpine/3"), _image(OTHER)],
                             me=_inv("me", pending=(pull,))))
    assert attrs[NEW].owner is None
    assert attrs[OTHER].owner is None


def test_an_alias_match_comes_before_an_in_flight_pull() -> None:
    rec, pending_rec = _record("deb"), _record("other")
    pull = PendingPull(server=SERVER, alias="debian/12", record=pending_rec)
    attrs = attribute(_state([_image(NEW, "deb", source_alias="debian/12")],
                             me=_inv("me", {OLD: rec}), you=_inv("you", pending=(pull,))))
    assert attrs[NEW] == Attribution("me", rec, successor_of=OLD)
