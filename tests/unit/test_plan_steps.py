"""The planner's pure steps, one at a time (the whole plan is pinned by test_planner*.py
and tests/golden).  Each step reads a :class:`TargetView` and returns values."""

from __future__ import annotations

from datetime import timedelta

from reconciler.core.plan_aliases import alias_changes, alias_deletions
from reconciler.core.plan_changes import Deletion, first_deletions
from reconciler.core.plan_images import DeclaredAlias
from reconciler.core.plan_store import prune, server_changes, stale_cached, untouched
from reconciler.core.plan_view import entry_key, view_of
from reconciler.model.keys import EntryKey
from reconciler.model.observed import (
    Inventory,
    ObservedAlias,
    ObservedImage,
    RecordedImage,
    TargetState,
)
from reconciler.model.plan import Action
from tests.support.builders import NOW, entry

ME = "incus-images"
A, B, C = "a" * 64, "b" * 64, "c" * 64


def _img(fp: str, *aliases: str, **kw: object) -> ObservedImage:
    return ObservedImage.model_validate({
        "fingerprint": fp, **kw,
        "aliases": tuple(ObservedAlias(name=n, target=fp) for n in aliases)})


def _rec(source: str = "r:deb/1", *aliases: str, arch: str = "x86_64") -> RecordedImage:
    return RecordedImage(source=source, architecture=arch, aliases=aliases)


def _state(*images: ObservedImage, mine: dict[str, RecordedImage] | None = None,
           other: dict[str, RecordedImage] | None = None,
           other_server: dict[str, str] | None = None) -> TargetState:
    invs = {ME: Inventory(owner=ME, project="default", images=mine or {})}
    if other is not None or other_server is not None:
        invs["other"] = Inventory(owner="other", project="default", images=other or {},
                                  server=other_server or {})
    return TargetState(target="local", project="default", effective_project="default",
                       host_architecture="x86_64", images=images, inventories=invs)


def test_an_entry_and_its_recorded_images_share_one_key() -> None:
    """An entry without an architecture takes the host's, like the record of its image."""
    view = view_of(_state(_img(B), _img(A), mine={B: _rec(), A: _rec(),
                                                  C: _rec(arch="aarch64")}), ME)
    key = entry_key(entry("r:deb/1"), "x86_64")
    assert key == EntryKey("local", "r:deb/1", "container", "x86_64")
    assert view.managed[key] == (A, B), "sorted by fingerprint"
    assert EntryKey("local", "r:deb/1", "container", "aarch64") not in view.managed, \
        "C is not present"


def test_the_first_reason_to_delete_an_image_wins() -> None:
    got = first_deletions([Deletion(A, "expired", "s"), Deletion(B, "x", None),
                           Deletion(A, "no longer declared", None)])
    assert got == (Deletion(A, "expired", "s"), Deletion(B, "x", None))


def test_prune_deletes_or_keeps_what_no_entry_keeps() -> None:
    view = view_of(_state(_img(A), _img(B), _img(C), mine={A: _rec(), B: _rec(), C: _rec()}),
                   ME)
    deletions, kept = prune(view, keep={A}, deleting={B}, enabled=True)
    assert deletions == (Deletion(C, "no longer declared", "r:deb/1"),)
    assert kept == ()
    deletions, kept = prune(view, keep={A}, deleting={B}, enabled=False)
    assert deletions == ()
    assert kept == ((C, _rec()),)


def test_aliases_are_created_moved_or_conflict_by_who_holds_them() -> None:
    state = _state(_img(A, "mine"), _img(B, "hand"), _img(C, "theirs"),
                   mine={A: _rec("r:deb/1", "mine")}, other={C: _rec("r:x", "theirs")})
    view = view_of(state, ME)
    declared = {n: DeclaredAlias(n, "d" * 64, "", "r:deb/1")
                for n in ("new", "mine", "hand", "theirs")}
    changes, conflicts = alias_changes(view, declared, replaced=(), alias_conflicts="fail")
    assert [(c.action, c.alias) for c in changes] == [
        (Action.ALIAS_MOVE, "mine"), (Action.ALIAS_CREATE, "new")]
    assert [c.split(":")[1].strip() for c in conflicts] == [
        "alias 'hand' is held by image " + B + ", which this file does not manage "
        "(set policy.alias_conflicts", "alias 'theirs' is managed by owner 'other' (image "
        + C[:12] + ")"]
    taken, conflicts = alias_changes(view, declared, replaced=(), alias_conflicts="take")
    assert ("taken from an unmanaged image", "hand") in [(c.reason, c.alias) for c in taken]
    assert len(conflicts) == 1


def test_an_alias_on_a_replaced_cached_copy_is_created_afresh() -> None:
    view = view_of(_state(_img(A, "x", cached=True)), ME)
    changes, _ = alias_changes(view, {"x": DeclaredAlias("x", A, "", "s")}, replaced={A},
                               alias_conflicts="fail")
    assert [(c.action, c.to) for c in changes] == [(Action.ALIAS_CREATE, A)]


def test_only_recorded_undeclared_aliases_on_staying_images_are_deleted() -> None:
    view = view_of(_state(_img(A, "old", "hand", "kept"), _img(B, "gone"),
                          mine={A: _rec("s", "old", "kept"), B: _rec("s", "gone")}), ME)
    changes = alias_deletions(view, deleting={B}, declared={"kept"})
    assert [(c.alias, c.from_) for c in changes] == [("old", A)]


def test_cached_images_of_nobody_go_after_the_policy_s_days() -> None:
    stale = _img(A, cached=True, last_used_at=NOW - timedelta(days=8))
    fresh = _img(B, cached=True, last_used_at=NOW - timedelta(days=6))
    explicit = _img(C, uploaded_at=NOW - timedelta(days=80))
    view = view_of(_state(stale, fresh, explicit), ME)
    assert [d.fingerprint for d in stale_cached(view, keep=(), days=7, now=NOW)] == [A]
    assert stale_cached(view, keep={A}, days=7, now=NOW) == ()
    assert stale_cached(view, keep=(), days=None, now=NOW) == ()


def test_server_keys_differ_from_the_daemon_default_or_conflict_with_another_owner() -> None:
    """A key the daemon does not list has the default the store reports for it."""
    state = _state(other_server={"images.remote_cache_expiry": "5"}).model_copy(update={
        "server_defaults": {"images.auto_update_interval": "6",
                            "images.remote_cache_expiry": "10"}})
    view = view_of(state, ME)
    changes, conflicts = server_changes(view, {"images.auto_update_interval": "6",
                                               "images.remote_cache_expiry": "3"})
    assert len(changes) == 1, "interval 6 is the daemon's default already"
    assert changes[0].fields is not None
    field = changes[0].fields["images.remote_cache_expiry"]
    assert (field.from_, field.to) == ("10", "3"), "from the daemon default"
    assert [c.split("server setting ")[1] for c in conflicts] == [
        "images.remote_cache_expiry is set to '5' by owner 'other'; this file wants '3'"]


def test_untouched_lists_images_of_others_that_stay() -> None:
    view = view_of(_state(_img(A), _img(B, "x"), _img(C), mine={A: _rec()}, other={C: _rec()}),
                   ME)
    got = untouched(view, keep=(), deleting=())
    assert [(u.fingerprint, u.owner, u.aliases) for u in got] == [
        (B, None, ("x",)), (C, "other", ())]
    assert untouched(view, keep={B}, deleting={C}) == ()
