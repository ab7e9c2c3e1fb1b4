"""The ``ImageStore`` contract: each test states one behaviour of the port and asserts it,
identically, on the in-memory ``FakeStore`` and on a real ``IncusStore`` (``backend``).

The unit tests of the planner and of apply trust the fake; these tests are what make
that trust earned.  When the two disagree, the fake is fixed: the daemon is the truth.
No value here depends on today's date: expiries are fixed instants.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

import pytest

from reconciler.adapters.remotes.reader import HttpRemoteReader
from reconciler.core.inventory import encode, with_inventories
from reconciler.errors import (
    AlreadyExists,
    NotFound,
    OperationFailed,
    PreconditionFailed,
    StoreError,
)
from reconciler.model.config import RemoteSpec
from reconciler.model.observed import Inventory, ObservedImage, RecordedImage, inventory_key
from reconciler.model.plan import PullSource, Writable
from reconciler.model.remote import RemoteImage
from tests.contract.conftest import ALIAS, OLD_SERIAL, Backend, Remote

EXPIRY = datetime(2031, 6, 30, 12, 0, tzinfo=UTC)
MISSING = "d" * 64


def writable(**kw: Any) -> Writable:
    base: dict[str, Any] = {"auto_update": False, "public": False, "profiles": ("default",)}
    return Writable(**{**base, **kw})


def by_alias(remote: Remote, alias: str = ALIAS) -> PullSource:
    return PullSource(remote="test", server=remote.url, protocol="simplestreams", alias=alias)


def by_fingerprint(remote: Remote, fingerprint: str) -> PullSource:
    return PullSource(remote="test", server=remote.url, protocol="simplestreams",
                      fingerprint=fingerprint)


def pull(backend: Backend, source: PullSource, w: Writable | None = None) -> str:
    return backend.store.pull_image(source, certificate=None, writable=w or writable(),
                                    progress=lambda _text: None)


def present(backend: Backend, fingerprint: str) -> ObservedImage:
    img = backend.store.get_image(fingerprint)
    assert img is not None, f"{fingerprint[:12]} is not in the {backend.kind} store"
    return img


# -- observe -----------------------------------------------------------------------------------

def test_observe_an_empty_store(backend: Backend) -> None:
    state = backend.store.observe()
    assert (state.target, state.project, state.effective_project) == \
        ("local", "default", "default")
    assert state.images == ()
    assert state.inventories == {}
    assert state.instances == {}
    assert "default" in state.profiles
    assert state.host_architecture
    assert isinstance(state.config_etag, str) and state.config_etag


# -- pulls -------------------------------------------------------------------------------------

def test_pull_by_alias_lands_the_newest_build_with_its_fields(
        backend: Backend, remote: Remote) -> None:
    fp = pull(backend, by_alias(remote), writable(
        auto_update=True, properties={"team": "web", "gone": None}))
    assert fp == remote.new.fingerprint
    img = present(backend, fp)
    assert (img.type, img.architecture, img.cached) == ("container", "x86_64", False)
    assert (img.auto_update, img.public, img.profiles) == (True, False, ("default",))
    assert img.properties == {**remote.new.properties, "team": "web"}
    assert img.size == remote.new.size
    assert img.created_at == remote.new.created_at
    assert img.expires_at is None
    assert img.update_source is not None
    assert (img.update_source.server, img.update_source.protocol, img.update_source.alias) == \
        (remote.url, "simplestreams", ALIAS)
    assert img.aliases == ()  # a pull never creates aliases
    assert [i.fingerprint for i in backend.store.observe().images] == [fp]


def test_pull_by_fingerprint_lands_that_build_without_an_update_source(
        backend: Backend, remote: Remote) -> None:
    fp = pull(backend, by_fingerprint(remote, remote.old.fingerprint),
              writable(auto_update=True, public=True))
    assert fp == remote.old.fingerprint
    img = present(backend, fp)
    assert img.update_source is None
    # auto_update is stored as asked, even though the daemon has nothing to update from
    assert (img.auto_update, img.public) == (True, True)
    assert img.properties == remote.old.properties
    assert img.created_at == remote.old.created_at


def test_pulling_a_present_image_keeps_its_writable_fields(
        backend: Backend, remote: Remote) -> None:
    """The daemon rewrites them with the request's; the store puts them back."""
    fp = pull(backend, by_fingerprint(remote, remote.old.fingerprint),
              writable(properties={"team": "web"}))
    before = present(backend, fp)
    again = pull(backend, by_fingerprint(remote, remote.old.fingerprint),
                 writable(public=True, profiles=(), properties={"tier": "gold"}))
    assert again == fp
    assert present(backend, fp) == before
    assert len(backend.store.observe().images) == 1


def test_a_failed_pull_of_a_present_image_with_an_alias_keeps_its_writable_fields(
        backend: Backend, remote: Remote) -> None:
    """Incus 6.0.4 fails such a pull ("Alias already exists") after rewriting the
    image's fields with the request's; the store puts them back."""
    fp = pull(backend, by_fingerprint(remote, remote.old.fingerprint),
              writable(properties={"team": "web"}))
    backend.store.create_alias("by-hand", fp, "")
    before = present(backend, fp)
    with pytest.raises(OperationFailed, match="Alias already exists"):
        pull(backend, by_fingerprint(remote, fp),
             writable(auto_update=True, public=True, profiles=(), properties={"tier": "gold"}))
    assert present(backend, fp) == before


@pytest.mark.parametrize("what", ["alias", "fingerprint"])
def test_pulling_what_the_remote_does_not_serve_fails_and_lands_nothing(
        backend: Backend, remote: Remote, what: str) -> None:
    source = by_alias(remote, "nope/1") if what == "alias" else by_fingerprint(remote, MISSING)
    with pytest.raises(OperationFailed):
        pull(backend, source)
    assert backend.store.observe().images == ()


@pytest.mark.parametrize("what", ["alias", "fingerprint"])
def test_a_pull_naming_an_unknown_profile_fails_yet_lands_the_image(
        backend: Backend, remote: Remote, what: str) -> None:
    """The daemon downloads and records the image (public as asked, the project's
    default profile, the remote's properties), then fails on the profile."""
    source = by_alias(remote) if what == "alias" else by_fingerprint(
        remote, remote.new.fingerprint)
    with pytest.raises(OperationFailed, match="nosuch"):
        pull(backend, source, writable(auto_update=True, public=True, profiles=("nosuch",),
                                       properties={"team": "web"}))
    img = present(backend, remote.new.fingerprint)
    assert (img.auto_update, img.public, img.profiles) == (what == "alias", True, ("default",))
    assert img.properties == remote.new.properties
    landed_source = None if img.update_source is None else img.update_source.alias
    assert landed_source == (ALIAS if what == "alias" else None)


def test_a_pull_of_a_present_image_naming_an_unknown_profile_changes_nothing(
        backend: Backend, remote: Remote) -> None:
    fp = pull(backend, by_fingerprint(remote, remote.old.fingerprint))
    before = present(backend, fp)
    with pytest.raises(OperationFailed, match="nosuch"):
        pull(backend, by_fingerprint(remote, fp), writable(public=True, profiles=("nosuch",)))
    assert present(backend, fp) == before


# -- upload_image ------------------------------------------------------------------------------

def upload(backend: Backend, remote: Remote, build: RemoteImage, fingerprint: str = "") -> str:
    spec = RemoteSpec(name="test", url=remote.url, protocol="simplestreams")
    with HttpRemoteReader() as reader, ExitStack() as stack:
        parts = [(f.path.rsplit("/", 1)[-1], stack.enter_context(reader.open_file(spec, f)))
                 for f in build.files]
        return backend.store.upload_image(parts, fingerprint=fingerprint or build.fingerprint,
                                          type_=build.type, progress=lambda _text: None)


def test_upload_lands_the_image_with_default_fields(backend: Backend, remote: Remote) -> None:
    fp = upload(backend, remote, remote.old)
    assert fp == remote.old.fingerprint
    img = present(backend, fp)
    assert (img.type, img.architecture, img.cached) == ("container", "x86_64", False)
    assert (img.auto_update, img.public, img.profiles) == (False, False, ("default",))
    assert img.update_source is None
    assert img.size == remote.old.size
    assert img.created_at == remote.old.created_at
    # an upload's properties are its own metadata.yaml's (tests/support/images.py),
    # not the remote's product fields a pull records
    assert img.properties == {
        "os": "tiny", "release": "1.0", "variant": "default", "architecture": "amd64",
        "serial": OLD_SERIAL, "description": f"tiny 1.0 amd64 (default) ({OLD_SERIAL})"}


def test_uploading_a_present_image_answers_its_fingerprint(
        backend: Backend, remote: Remote) -> None:
    fp = pull(backend, by_fingerprint(remote, remote.old.fingerprint), writable(public=True))
    assert upload(backend, remote, remote.old) == fp
    assert present(backend, fp).public  # untouched


def test_uploading_under_a_wrong_fingerprint_fails_and_lands_nothing(
        backend: Backend, remote: Remote) -> None:
    with pytest.raises(OperationFailed):
        upload(backend, remote, remote.old, fingerprint=MISSING)
    assert backend.store.observe().images == ()


# -- update_image ------------------------------------------------------------------------------

def test_update_image_sets_then_clears_the_expiry(backend: Backend, remote: Remote) -> None:
    """``expires_at: None`` is written as 1970-01-01 (the daemon ignores a zero time) and
    reads back as no expiry."""
    fp = pull(backend, by_fingerprint(remote, remote.old.fingerprint))
    backend.store.update_image(fp, writable(expires_at=EXPIRY))
    assert present(backend, fp).expires_at == EXPIRY
    backend.store.update_image(fp, writable(expires_at=None))
    assert present(backend, fp).expires_at is None


def test_update_image_writes_every_writable_field(backend: Backend, remote: Remote) -> None:
    backend.add_profile("extra")
    fp = pull(backend, by_fingerprint(remote, remote.old.fingerprint),
              writable(properties={"team": "web", "tier": "gold"}))
    backend.store.update_image(fp, writable(
        auto_update=True, public=True, profiles=("default", "extra"),
        properties={"team": "platform", "tier": None, "os": ""}))
    img = present(backend, fp)
    assert (img.auto_update, img.public, sorted(img.profiles)) == \
        (True, True, ["default", "extra"])
    # a None or empty value removes the key; the others are merged over the image's own
    expected = {k: v for k, v in remote.old.properties.items() if k != "os"}
    assert img.properties == {**expected, "team": "platform"}


def test_update_image_with_an_unknown_profile_fails_and_changes_nothing(
        backend: Backend, remote: Remote) -> None:
    fp = pull(backend, by_fingerprint(remote, remote.old.fingerprint))
    before = present(backend, fp)
    with pytest.raises(StoreError) as err:
        backend.store.update_image(fp, writable(public=True, profiles=("nosuch",)))
    assert type(err.value) is StoreError
    assert "nosuch" in str(err.value)
    assert present(backend, fp) == before


def test_update_of_a_missing_image_is_not_found(backend: Backend) -> None:
    with pytest.raises(NotFound):
        backend.store.update_image(MISSING, writable())


# -- get_image / delete_image --------------------------------------------------------------------

def test_get_image_of_a_missing_image_is_none(backend: Backend) -> None:
    assert backend.store.get_image(MISSING) is None


def test_get_image_shows_the_images_aliases(backend: Backend, remote: Remote) -> None:
    fp = pull(backend, by_fingerprint(remote, remote.old.fingerprint))
    backend.store.create_alias("b-name", fp, "second")
    backend.store.create_alias("a-name", fp, "first")
    img = present(backend, fp)
    assert sorted((a.name, a.description, a.target) for a in img.aliases) == \
        [("a-name", "first", fp), ("b-name", "second", fp)]


def test_delete_image_deletes_its_aliases(backend: Backend, remote: Remote) -> None:
    old = pull(backend, by_fingerprint(remote, remote.old.fingerprint))
    new = pull(backend, by_alias(remote))
    backend.store.create_alias("doomed", old, "")
    backend.store.create_alias("kept", new, "")
    backend.store.delete_image(old)
    assert backend.store.get_image(old) is None
    assert set(backend.store.observe().alias_targets()) == {"kept"}
    with pytest.raises(NotFound):
        backend.store.delete_image(old)


# -- aliases -------------------------------------------------------------------------------------

def test_alias_create_move_update_delete(backend: Backend, remote: Remote) -> None:
    a = pull(backend, by_fingerprint(remote, remote.old.fingerprint))
    b = pull(backend, by_alias(remote))
    store = backend.store

    store.create_alias("debian/bookworm", a, "Debian 12")
    held = store.observe().alias_targets()["debian/bookworm"]
    assert (held.target, held.description) == (a, "Debian 12")

    store.move_alias("debian/bookworm", b)  # the description is kept
    held = store.observe().alias_targets()["debian/bookworm"]
    assert (held.target, held.description) == (b, "Debian 12")

    store.update_alias("debian/bookworm", "kept fresh")
    held = store.observe().alias_targets()["debian/bookworm"]
    assert (held.target, held.description) == (b, "kept fresh")

    store.delete_alias("debian/bookworm")
    assert store.observe().alias_targets() == {}


def expect(error: type[StoreError], call: Callable[[], object]) -> None:
    """``call`` raises exactly ``error``, with the HTTP status the daemon answers it with."""
    with pytest.raises(StoreError) as err:
        call()
    assert type(err.value) is error
    assert err.value.status == STATUS[error]


STATUS: dict[type[StoreError], int] = {NotFound: 404, AlreadyExists: 409, PreconditionFailed: 412}


def test_alias_errors_have_the_same_types(backend: Backend, remote: Remote) -> None:
    fp = pull(backend, by_fingerprint(remote, remote.old.fingerprint))
    store = backend.store
    store.create_alias("taken", fp, "")
    expect(AlreadyExists, lambda: store.create_alias("taken", fp, ""))
    # the name is checked before the target
    expect(AlreadyExists, lambda: store.create_alias("taken", MISSING, ""))
    expect(NotFound, lambda: store.create_alias("fresh", MISSING, ""))
    expect(NotFound, lambda: store.move_alias("taken", MISSING))
    expect(NotFound, lambda: store.move_alias("nope", fp))
    expect(NotFound, lambda: store.update_alias("nope", "x"))
    expect(NotFound, lambda: store.delete_alias("nope"))
    expect(NotFound, lambda: store.delete_image(MISSING))
    expect(NotFound, lambda: store.update_image(MISSING, writable()))
    assert {n: a.target for n, a in store.observe().alias_targets().items()} == {"taken": fp}


# -- server config -------------------------------------------------------------------------------

def test_server_config_compare_and_swap(backend: Backend) -> None:
    store = backend.store
    _, etag = store.get_server_config()
    store.patch_server_config({"user.one": "1"}, etag)
    config, etag2 = store.get_server_config()
    assert config["user.one"] == "1"
    assert etag2 != etag

    # a stale ETag is refused
    expect(PreconditionFailed, lambda: store.patch_server_config({"user.one": "2"}, etag))
    assert store.get_server_config() == (config, etag2)

    store.patch_server_config({"user.one": ""}, etag2)  # an empty value unsets the key
    assert "user.one" not in store.get_server_config()[0]


def test_a_patch_that_changes_nothing_keeps_the_etag(backend: Backend) -> None:
    store = backend.store
    _, etag = store.get_server_config()
    store.patch_server_config({}, etag)
    assert store.get_server_config()[1] == etag


def test_a_patch_without_an_etag_is_unconditional(backend: Backend) -> None:
    backend.store.patch_server_config({"user.two": "2"}, "")
    assert backend.store.get_server_config()[0]["user.two"] == "2"


def test_observe_reports_the_whole_server_config_and_the_core_reads_the_records(
        backend: Backend) -> None:
    store = backend.store
    key = inventory_key("web", "default")
    record = Inventory(owner="web", project="default", images={
        "a" * 64: RecordedImage(source="test:tiny/1.0", architecture="x86_64")})
    _, etag = store.get_server_config()
    store.patch_server_config({key: encode(record), "user.other": "x"}, etag)
    raw = store.observe()
    assert raw.server_config[key] == encode(record)
    assert raw.inventories == {}
    state = with_inventories(raw)
    assert set(state.inventories) == {"web"}
    assert state.inventories["web"].images == record.images
    assert key not in state.server_config
    assert state.server_config["user.other"] == "x"
    assert state.config_etag == store.get_server_config()[1]
