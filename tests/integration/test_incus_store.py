"""``IncusStore`` against a real incusd (6.0.x) in a throw-away directory.

Each test gets a fresh daemon (``incusd`` fixture); images are tiny tarballs built
here, so nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import socket
import tarfile
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from reconciler.adapters.incus import IncusStore, connect
from reconciler.core.inventory import with_inventories
from reconciler.errors import (
    AlreadyExists,
    NotFound,
    OperationFailed,
    PreconditionFailed,
    StoreError,
    UntrustedClient,
)
from reconciler.model.config import TargetSpec
from reconciler.model.observed import inventory_key
from reconciler.model.plan import PullSource, Writable
from tests.conftest import IncusdFactory
from tests.support.incusd import Incusd

pytestmark = pytest.mark.integration

CREATED = 1_767_225_600  # 2026-01-01T00:00:00Z


# -- tiny images --------------------------------------------------------------------------

def _tar(members: dict[str, bytes | None], *, compress: bool = True) -> bytes:
    """A deterministic tarball: ``None`` members are directories."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.mtime = CREATED
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    if not compress:
        return raw
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as f:
        f.write(raw)
    return out.getvalue()


def _metadata(seed: int) -> bytes:
    return (f"architecture: x86_64\ncreation_date: {CREATED + seed}\n"
            "properties:\n  os: tiny\n").encode()


def unified_image(seed: int = 0) -> tuple[bytes, str]:
    """A unified container image and its fingerprint (sha256 of the bytes)."""
    data = _tar({"metadata.yaml": _metadata(seed), "rootfs": None,
                 "rootfs/hello": f"hello {seed}\n".encode()})
    return data, hashlib.sha256(data).hexdigest()


def split_image(seed: int = 0) -> tuple[bytes, bytes, str]:
    """A split container image (metadata tarball, rootfs tarball) and its fingerprint."""
    meta = _tar({"metadata.yaml": _metadata(seed), "templates": None})
    rootfs = _tar({"hello": f"split {seed}\n".encode()})
    return meta, rootfs, hashlib.sha256(meta + rootfs).hexdigest()


def chunks(data: bytes, size: int = 100) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


def upload(store: IncusStore, seed: int = 0) -> str:
    data, fp = unified_image(seed)
    return store.upload_image([("tiny.tar.gz", chunks(data))], fingerprint=fp,
                              type_="container", progress=lambda _t: None)


def writable(**kw: Any) -> Writable:
    base: dict[str, Any] = {"auto_update": False, "public": False, "profiles": ("default",)}
    return Writable(**{**base, **kw})


class Counter:
    """Counts the HTTP requests a store sends (a ``requests`` response hook)."""

    def __init__(self, store: IncusStore) -> None:
        self.count = 0
        store.session.hooks["response"].append(self)

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.count += 1


@pytest.fixture
def store(incusd: Incusd) -> Iterator[IncusStore]:
    with connect(incusd.target()) as s:
        yield s


# -- observe --------------------------------------------------------------------------------

def test_observe_empty_store(store: IncusStore, incusd: Incusd) -> None:
    state = store.observe()
    assert state.target == "local"
    assert state.project == state.effective_project == "default"
    assert state.images == ()
    assert state.host_architecture
    assert state.server_version.startswith("6.")
    assert state.config_etag
    assert state.inventories == {}
    assert state.server_config.get("images.auto_update_interval") == "0"


def test_observe_sends_a_constant_number_of_requests(store: IncusStore) -> None:
    upload(store, 0)
    counter = Counter(store)
    assert len(store.observe().images) == 1
    one = counter.count
    for seed in range(1, 20):
        upload(store, seed)
    counter.count = 0
    assert len(store.observe().images) == 20
    # GET /1.0, images, profiles, instances (+ the project when not default)
    assert counter.count == one <= 5


def test_upload_unified_then_observe(store: IncusStore) -> None:
    seen: list[str] = []
    data, fp = unified_image()
    landed = store.upload_image([("tiny.tar.gz", chunks(data))], fingerprint=fp,
                                type_="container", progress=seen.append)
    assert landed == fp
    assert seen and seen[-1].endswith("done")
    (img,) = store.observe().images
    assert img.fingerprint == fp
    assert img.type == "container"
    assert img.architecture == "x86_64"
    assert img.properties == {"os": "tiny"}
    assert img.created_at == datetime.fromtimestamp(CREATED, UTC)
    assert img.uploaded_at is not None
    assert img.expires_at is None and img.last_used_at is None
    assert img.update_source is None and not img.cached
    assert img.size == len(data)
    assert img.profiles == ("default",)
    # Uploading what is already there is a no-op that still answers the fingerprint.
    assert upload(store) == fp


def test_upload_split(store: IncusStore) -> None:
    meta, rootfs, fp = split_image(3)
    landed = store.upload_image(
        [("incus.tar.gz", chunks(meta)), ("root.tar.gz", chunks(rootfs))],
        fingerprint=fp, type_="container", progress=lambda _t: None)
    assert landed == fp
    img = store.get_image(fp)
    assert img is not None and img.size == len(meta) + len(rootfs)


def test_upload_with_a_wrong_fingerprint_fails(store: IncusStore) -> None:
    data, _ = unified_image()
    with pytest.raises(OperationFailed, match="don't match"):
        store.upload_image([("x", chunks(data))], fingerprint="0" * 64, type_="container",
                           progress=lambda _t: None)
    assert store.observe().images == ()


# -- images ---------------------------------------------------------------------------------

def test_update_image_writes_and_clears_expiry_and_profiles(
    store: IncusStore, incusd: Incusd
) -> None:
    incusd.api("POST", "/1.0/profiles", {"name": "extra", "config": {}, "devices": {}})
    fp = upload(store)
    expiry = datetime(2031, 6, 30, tzinfo=UTC)
    store.update_image(fp, writable(
        auto_update=True, public=True, profiles=("default", "extra"),
        properties={"team": "web"}, expires_at=expiry))
    img = store.get_image(fp)
    assert img is not None
    assert img.expires_at == expiry
    assert sorted(img.profiles) == ["default", "extra"]
    assert img.public and img.auto_update
    assert img.properties == {"os": "tiny", "team": "web"}

    store.update_image(fp, writable(profiles=(), properties={"team": None, "os": "tinier"}))
    img = store.get_image(fp)
    assert img is not None
    assert img.expires_at is None
    assert img.profiles == ()
    assert not img.public and not img.auto_update
    assert img.properties == {"os": "tinier"}


def test_update_image_reports_a_change_that_did_not_land(
    store: IncusStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    fp = upload(store)
    adapter = store.session.get_adapter(store.transport.base + "/1.0")
    real_send = adapter.send

    def lying_send(request: requests.PreparedRequest, **kw: Any) -> requests.Response:
        if request.method != "PUT":
            return real_send(request, **kw)
        # A daemon that says "Success" to the PUT without doing anything.
        fake = requests.Response()
        fake.status_code = 200
        fake._content = b'{"type":"sync","status":"Success","status_code":200,"metadata":{}}'
        fake.request = request
        return fake

    monkeypatch.setattr(adapter, "send", lying_send)
    with pytest.raises(StoreError, match=r"public, expires_at did not land"):
        store.update_image(fp, writable(public=True, expires_at=datetime(2031, 1, 1, tzinfo=UTC)))


def test_update_missing_image_is_not_found(store: IncusStore) -> None:
    with pytest.raises(NotFound):
        store.update_image("f" * 64, writable())


def test_get_and_delete_image(store: IncusStore) -> None:
    assert store.get_image("e" * 64) is None
    fp = upload(store)
    store.create_alias("doomed", fp, "")
    store.delete_image(fp)
    assert store.get_image(fp) is None
    assert store.observe().alias_targets() == {}
    with pytest.raises(NotFound):
        store.delete_image(fp)


# -- aliases --------------------------------------------------------------------------------

def test_alias_lifecycle(store: IncusStore) -> None:
    a, b = upload(store, 1), upload(store, 2)
    store.create_alias("debian/bookworm", a, "Debian 12")
    aliases = store.observe().alias_targets()
    assert aliases["debian/bookworm"].target == a
    assert aliases["debian/bookworm"].description == "Debian 12"

    with pytest.raises(AlreadyExists):
        store.create_alias("debian/bookworm", b, "")

    counter = Counter(store)
    store.move_alias("debian/bookworm", b)
    assert counter.count == 1
    moved = store.observe().alias_targets()["debian/bookworm"]
    assert (moved.target, moved.description) == (b, "Debian 12")

    store.update_alias("debian/bookworm", "kept fresh")
    updated = store.observe().alias_targets()["debian/bookworm"]
    assert (updated.target, updated.description) == (b, "kept fresh")

    store.delete_alias("debian/bookworm")
    assert store.observe().alias_targets() == {}
    with pytest.raises(NotFound):
        store.delete_alias("debian/bookworm")
    with pytest.raises(NotFound):
        store.move_alias("nope", a)
    with pytest.raises(NotFound):
        store.create_alias("x", "d" * 64, "")


# -- server config --------------------------------------------------------------------------

def test_server_config_round_trip_and_stale_etag(store: IncusStore) -> None:
    _, etag = store.get_server_config()
    key = inventory_key("web", "default")
    store.patch_server_config({key: '{"images":{}}', "user.other": "x"}, etag)
    config2, etag2 = store.get_server_config()
    assert config2[key] == '{"images":{}}' and config2["user.other"] == "x"
    assert etag2 != etag

    with pytest.raises(PreconditionFailed):
        store.patch_server_config({"user.other": "y"}, etag)
    assert store.get_server_config()[0]["user.other"] == "x"

    raw = store.observe()  # the whole config: the core reads the records in it
    assert raw.inventories == {} and raw.server_config[key] == '{"images":{}}'
    state = with_inventories(raw)
    assert set(state.inventories) == {"web"}
    assert key not in state.server_config and state.server_config["user.other"] == "x"
    assert state.config_etag == etag2

    store.patch_server_config({key: "", "user.other": ""}, etag2)
    assert key not in store.get_server_config()[0]


# -- projects -------------------------------------------------------------------------------

def test_project_without_own_images_uses_the_default_store(incusd: Incusd) -> None:
    incusd.create_project("shared", {"features.images": "false"})
    incusd.create_project("own", {"features.images": "true"})
    with connect(incusd.target()) as default:
        fp = upload(default)
    with connect(incusd.target(project="shared")) as shared:
        state = shared.observe()
        assert (state.project, state.effective_project) == ("shared", "default")
        assert [i.fingerprint for i in state.images] == [fp]
    with connect(incusd.target(project="own")) as own:
        state = own.observe()
        assert (state.project, state.effective_project) == ("own", "own")
        assert state.images == ()
    with connect(incusd.target(project="missing")) as missing, pytest.raises(
        StoreError, match="missing"
    ):
        missing.observe()


# -- connection and trust -------------------------------------------------------------------

def test_missing_socket() -> None:
    target = TargetSpec(name="gone", url="unix:///tmp/ii-does-not-exist/unix.socket")
    with connect(target) as store, pytest.raises(StoreError) as err:
        store.observe()
    assert "cannot connect to unix:///tmp/ii-does-not-exist/unix.socket: no such socket " \
           "(is incusd running?)" in str(err.value)
    assert "'gone'" in str(err.value)


def test_https_trusted_untrusted_and_restricted_clients(incusd: Incusd) -> None:
    incusd.enable_https()
    trusted = incusd.make_client_cert("trusted")
    with connect(incusd.https_target(trusted)) as store:
        state = store.observe()
        assert state.images == () and state.config_etag
        fp = upload(store)
        assert store.get_image(fp) is not None

    stranger = incusd.make_client_cert("stranger", trust=False)
    with connect(incusd.https_target(stranger)) as store, pytest.raises(UntrustedClient) as err:
        store.observe()
    assert "auth: untrusted" in str(err.value)
    assert "incus config trust add" in str(err.value)

    restricted = incusd.make_client_cert("restricted", restricted_projects=["default"])
    with connect(incusd.https_target(restricted)) as store:
        with pytest.raises(UntrustedClient, match="restricted"):
            store.observe()
        _, etag = store.get_server_config()
        with pytest.raises(UntrustedClient, match="restricted"):
            store.patch_server_config({"user.x": "1"}, etag)


def test_https_with_a_wrong_pinned_certificate(incusd: Incusd) -> None:
    incusd.enable_https()
    cert = incusd.make_client_cert("trusted")
    # Pin a certificate that is not the daemon's: the client's own.
    with connect(incusd.https_target(cert, server_cert=cert.cert_pem)) as store, \
            pytest.raises(StoreError, match="pinned server_cert"):
        store.observe()


def test_https_key_material_lives_in_memory_files_only(
        incusd: Incusd, private_files_made: list[str]) -> None:
    """The client key and its certificate are memory files (nothing on disk, gone with
    the process however it ends), closed by close(); the pinned server certificate goes
    straight into the TLS context."""
    made = private_files_made
    incusd.enable_https()
    cert = incusd.make_client_cert("trusted")
    store = connect(incusd.https_target(cert))
    secrets = store.transport._secrets
    assert secrets is not None and secrets.in_memory
    targets = sorted(os.readlink(p) for p in made)
    assert targets == [f"/memfd:incus-images-{n} (deleted)"
                       for n in ("client.crt", "client.key")]
    store.observe()  # the daemon accepts the client certificate read from memory
    store.close()
    assert not any(os.path.exists(p) and os.readlink(p).startswith("/memfd:incus-images-")
                   for p in made)


# -- pulls and operations -------------------------------------------------------------------

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_failing_pull_raises_operation_failed_with_the_daemons_text(store: IncusStore) -> None:
    server = f"http://127.0.0.1:{_closed_port()}"
    pull = PullSource(remote="broken", server=server, protocol="simplestreams", alias="tiny")
    with pytest.raises(OperationFailed) as err:
        store.pull_image(pull, certificate=None, writable=writable(), progress=lambda _t: None)
    assert "connection refused" in str(err.value)
    assert "index.json" in str(err.value)


def test_pull_from_another_incus_daemon(incusd_factory: IncusdFactory) -> None:
    source, target = incusd_factory(), incusd_factory()
    url = source.enable_https()
    with connect(source.target()) as src:
        fp = upload(src, 7)
        src.update_image(fp, writable(public=True))
        src.create_alias("tiny/7", fp, "")
    seen: list[str] = []
    pull = PullSource(remote="src", server=url, protocol="incus", alias="tiny/7")
    with connect(target.target()) as store:
        landed = store.pull_image(
            pull, certificate=source.server_cert_pem(), progress=seen.append,
            writable=writable(auto_update=True, properties={"team": "web", "gone": None}))
        assert landed == fp
        img = store.get_image(fp)
        assert img is not None
        assert img.auto_update and img.properties["team"] == "web"
        assert "gone" not in img.properties
        assert img.update_source is not None
        assert (img.update_source.server, img.update_source.protocol,
                img.update_source.alias) == (url, "incus", "tiny/7")
        assert img.aliases == ()  # the pull never creates aliases
        # The same pull by fingerprint lands the same image (already present).
        by_fp = PullSource(remote="src", server=url, protocol="incus", fingerprint=fp)
        assert store.pull_image(by_fp, certificate=source.server_cert_pem(),
                                writable=writable(), progress=seen.append) == fp


# -- the harness itself ---------------------------------------------------------------------

def test_harness_restart_kill9_and_stream_cache(incusd: Incusd) -> None:
    url = incusd.enable_https()
    cert = incusd.make_client_cert("trusted")
    with connect(incusd.target()) as store:
        fp = upload(store)
    pid = incusd.pid
    incusd.restart(graceful=False)  # SIGKILL, then start on the same directory
    assert incusd.pid != pid and incusd.running
    incusd.restart()  # SIGTERM
    with connect(incusd.https_target(cert)) as store:
        assert [i.fingerprint for i in store.observe().images] == [fp]
        assert store.get_server_config()[0]["images.auto_update_interval"] == "0"
    assert incusd.https_url == url

    server = "https://127.0.0.1:1/"
    cache = incusd.dir / "cache" / hashlib.sha256(b"https://127.0.0.1:1").hexdigest()
    cache.mkdir(parents=True)
    incusd.flush_stream_cache(server)
    assert not cache.exists()
    incusd.kill9()
    assert not incusd.running


def test_observe_reads_free_space_of_an_images_volume(store: IncusStore, incusd: Incusd) -> None:
    assert store.observe().images_free_bytes is None  # not exposed for the plain image dir
    incusd.api("POST", "/1.0/storage-pools", {"name": "pool", "driver": "dir"})
    incusd.api("POST", "/1.0/storage-pools/pool/volumes/custom", {"name": "imgs"})
    incusd.set_config({"storage.images_volume": "pool/imgs"})
    space = incusd.api("GET", "/1.0/storage-pools/pool/resources").metadata["space"]
    free = store.observe().images_free_bytes
    assert free is not None and 0 < free <= space["total"]
