"""HttpRemoteReader against a real simplestreams tree served from 127.0.0.1 (no incusd needed).

Aspects: fingerprints equal sha256(meta || rootfs) of the built files; one fetch of
each JSON file per remote per reader; HTTP and HTTPS (with and without a pinned
certificate); connect, HTTP and JSON failures as RemoteError naming the remote;
open_file checks size and sha256; the incus protocol's single listing request.
"""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path
from typing import Literal

import pytest

from reconciler.adapters.remotes.reader import HttpRemoteReader
from reconciler.errors import RemoteError
from reconciler.model.config import RemoteSpec
from reconciler.model.remote import RemoteCatalog, RemoteFile
from tests.support.images import BuiltImage
from tests.support.ssserver import ServedTree, TLSFiles, make_tls, serve
from tests.support.sstree import SimpleStreamsTree

pytestmark = pytest.mark.integration

INDEX = "streams/v1/index.json"
PRODUCTS = "streams/v1/images.json"


def resolved(cat: RemoteCatalog, alias: str, type_: str, arch: str, attr: str) -> object:
    """An attribute of the image ``alias`` resolves to, or None when it resolves to nothing."""
    image = cat.resolve(alias, type_, arch)
    return None if image is None else getattr(image, attr)


def spec(served: ServedTree | str, certificate: str | None = None,
         protocol: Literal["simplestreams", "incus"] = "simplestreams") -> RemoteSpec:
    url = served if isinstance(served, str) else served.url
    return RemoteSpec(name="test", url=url, protocol=protocol,
                      certificate=certificate)


def publish(tree: SimpleStreamsTree) -> list[BuiltImage]:
    return [
        tree.add("tiny", "1.0", "20250101_0000", aliases=("tiny/1.0", "tiny")),
        tree.add("tiny", "1.0", "20250102_0000", aliases=("tiny/1.0", "tiny")),
        tree.add("tiny", "1.0", "20250102_0000", arch="arm64"),
        tree.add("small", "2.0", "20250103_0000", requirements={"nesting": "true"},
                 support_eol="2030-01-01"),
        tree.add("uni", "1", "20250104_0000", unified=True),
    ]


def read_all(reader: HttpRemoteReader, remote: RemoteSpec, image_fp: str) -> bytes:
    catalog = reader.fetch_catalog(remote)
    image = catalog.by_fingerprint(image_fp)
    assert image is not None
    data = b""
    for file in image.files:
        with reader.open_file(remote, file) as chunks:
            data += b"".join(chunks)
    return data


def test_http_catalog_matches_the_built_files(sstree: SimpleStreamsTree,
                                              ss_http: ServedTree) -> None:
    old, new, arm, small, uni = publish(sstree)
    with HttpRemoteReader() as reader:
        catalog = reader.fetch_catalog(spec(ss_http))
        for built in (old, new, arm, small):
            assert built.rootfs is not None
            assert built.fingerprint == hashlib.sha256(built.metadata + built.rootfs).hexdigest()
            image = catalog.by_fingerprint(built.fingerprint)
            assert image is not None
            assert image.size == built.size
            assert [f.sha256 for f in image.files] == [
                hashlib.sha256(built.metadata).hexdigest(),
                hashlib.sha256(built.rootfs).hexdigest()]
        assert resolved(catalog, "tiny", "container", "x86_64", "fingerprint") == new.fingerprint
        assert resolved(catalog, "tiny/1.0/arm64", "container", "aarch64", "fingerprint") == \
            arm.fingerprint
        assert resolved(catalog, "small/2.0", "container", "x86_64", "requirements") == \
            {"nesting": "true"}
        assert resolved(catalog, "uni/1", "container", "x86_64", "fingerprint") == uni.fingerprint
        assert hashlib.sha256(read_all(reader, spec(ss_http), new.fingerprint)).hexdigest() == \
            new.fingerprint
        assert hashlib.sha256(read_all(reader, spec(ss_http), uni.fingerprint)).hexdigest() == \
            uni.fingerprint


def test_one_fetch_per_remote_per_reader(sstree: SimpleStreamsTree, ss_http: ServedTree) -> None:
    publish(sstree)
    with HttpRemoteReader() as reader:
        for alias in ("tiny", "tiny/1.0", "small/2.0", "uni/1", "missing"):
            for arch in ("x86_64", "aarch64"):
                reader.fetch_catalog(spec(ss_http)).resolve(alias, "container", arch)
    assert ss_http.count(INDEX) == 1
    assert ss_http.count(PRODUCTS) == 1
    with HttpRemoteReader() as second_run:
        second_run.fetch_catalog(spec(ss_http))
    assert ss_http.count(INDEX) == 2


def test_https_with_the_ca_as_certificate(sstree: SimpleStreamsTree, ss_https: ServedTree,
                                          tls_files: TLSFiles) -> None:
    new = publish(sstree)[1]
    assert ss_https.url.startswith("https://127.0.0.1:")
    with HttpRemoteReader() as reader:
        remote = spec(ss_https, tls_files.ca_pem)
        assert reader.fetch_catalog(remote).resolve("tiny", "container", "x86_64") is not None
        assert hashlib.sha256(read_all(reader, remote, new.fingerprint)).hexdigest() == \
            new.fingerprint


def test_https_with_the_server_certificate_pinned(sstree: SimpleStreamsTree,
                                                  ss_https: ServedTree,
                                                  tls_files: TLSFiles) -> None:
    """A pinned leaf that is not self-signed anchors the chain, as it does for the daemon."""
    publish(sstree)
    with HttpRemoteReader() as reader:
        catalog = reader.fetch_catalog(spec(ss_https, tls_files.cert_pem))
    assert len(catalog.images) == 5


def test_https_without_certificate_is_a_tls_error(sstree: SimpleStreamsTree,
                                                  ss_https: ServedTree,
                                                  no_system_cas: Path) -> None:
    publish(sstree)
    with HttpRemoteReader() as reader, pytest.raises(RemoteError) as caught:
        reader.fetch_catalog(spec(ss_https))
    message = str(caught.value)
    assert message.startswith("remote 'test': TLS certificate verification failed for "
                              f"{ss_https.url}: ")
    assert "set `certificate:` for a private CA" in message


def test_https_with_a_foreign_certificate_is_a_tls_error(
    sstree: SimpleStreamsTree, ss_https: ServedTree, tmp_path: Path
) -> None:
    other = make_tls(tmp_path / "other")
    with HttpRemoteReader() as reader, pytest.raises(RemoteError,
                                                     match="TLS certificate verification"):
        reader.fetch_catalog(spec(ss_https, other.ca_pem))


def test_unreachable_port_is_a_remote_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with HttpRemoteReader(retries=1) as reader:
        with pytest.raises(RemoteError) as caught:
            reader.fetch_catalog(spec(url))
        assert str(caught.value) == f"remote 'test': cannot connect to {url}: connection refused"
        assert caught.value.remote == "test"
        with pytest.raises(RemoteError) as again:  # the failure is cached too
            reader.fetch_catalog(spec(url))
        assert again.value is caught.value


def test_http_error_status_is_a_remote_error(tmp_path: Path) -> None:
    with serve(tmp_path) as served, HttpRemoteReader() as reader, \
            pytest.raises(RemoteError, match=rf"GET {served.url}/{INDEX} answered HTTP 404"):
        reader.fetch_catalog(spec(served))


def test_not_json_is_a_remote_error(tmp_path: Path) -> None:
    (tmp_path / "streams" / "v1").mkdir(parents=True)
    (tmp_path / INDEX).write_text("<html>not json</html>")
    with serve(tmp_path) as served, HttpRemoteReader() as reader, \
            pytest.raises(RemoteError, match=r"^remote 'test': streams/v1/index\.json is not "
                                             r"valid JSON$"):
        reader.fetch_catalog(spec(served))


def test_wrong_shape_is_a_remote_error(sstree: SimpleStreamsTree, ss_http: ServedTree) -> None:
    publish(sstree)
    (sstree.root / PRODUCTS).write_text(json.dumps({"products": {"p": {"arch": "amd64"}}}))
    with HttpRemoteReader() as reader, \
            pytest.raises(RemoteError, match=r"streams/v1/images\.json: product 'p'"):
        reader.fetch_catalog(spec(ss_http))


def test_corrupted_file_fails_open_file(sstree: SimpleStreamsTree, ss_http: ServedTree) -> None:
    built = publish(sstree)[1]
    sstree.corrupt(built.fingerprint)
    remote = spec(ss_http)
    with HttpRemoteReader(chunk_size=64) as reader:
        image = reader.fetch_catalog(remote).by_fingerprint(built.fingerprint)
        assert image is not None
        meta, rootfs = image.files
        with reader.open_file(remote, meta) as chunks:
            assert b"".join(chunks) == built.metadata
        received = b""
        with pytest.raises(RemoteError, match=r"sha256 .* does not match the index"), \
                reader.open_file(remote, rootfs) as chunks:
            for chunk in chunks:
                received += chunk
        assert len(received) < rootfs.size  # the bad file never came out whole


def test_truncated_file_fails_open_file(sstree: SimpleStreamsTree, ss_http: ServedTree) -> None:
    built = publish(sstree)[1]
    path = sstree.root / sstree.file_paths(built.fingerprint)[1]
    path.write_bytes(path.read_bytes()[:-10])
    remote = spec(ss_http)
    with HttpRemoteReader() as reader:
        image = reader.fetch_catalog(remote).by_fingerprint(built.fingerprint)
        assert image is not None
        with pytest.raises(RemoteError, match=r"got \d+ of the \d+ bytes"), \
                reader.open_file(remote, image.files[1]) as chunks:
            b"".join(chunks)


def test_incus_protocol_lists_images_in_one_request(tmp_path: Path) -> None:
    fp = hashlib.sha256(b"img").hexdigest()
    listing = {"type": "sync", "status": "Success", "status_code": 200, "metadata": [
        {"fingerprint": fp, "architecture": "x86_64", "type": "container", "size": 10,
         "aliases": [{"name": "srcimg", "description": ""}], "properties": {},
         "created_at": "2025-01-01T00:00:00Z", "expires_at": "0001-01-01T00:00:00Z"}]}
    (tmp_path / "1.0").mkdir()
    (tmp_path / "1.0" / "images").write_text(json.dumps(listing))
    with serve(tmp_path) as served, HttpRemoteReader() as reader:
        remote = spec(served, protocol="incus")
        catalog = reader.fetch_catalog(remote)
        reader.fetch_catalog(remote)
        assert resolved(catalog, "srcimg", "container", "x86_64", "fingerprint") == fp
        assert served.requests == ["/1.0/images?recursion=1"]
        dummy = RemoteFile(ftype="incus.tar.xz", path="x", sha256="0" * 64, size=0)
        with pytest.raises(RemoteError, match="upload fallback not supported for incus remotes"), \
                reader.open_file(remote, dummy):
            pass
        assert served.requests == ["/1.0/images?recursion=1"]


def test_missing_file_fails_open_file(sstree: SimpleStreamsTree, ss_http: ServedTree) -> None:
    remote = spec(ss_http)
    missing = RemoteFile(ftype="root.tar.xz", path="images/gone", sha256="0" * 64, size=1)
    with HttpRemoteReader() as reader, \
            pytest.raises(RemoteError, match=r"GET .*/images/gone answered HTTP 404"), \
            reader.open_file(remote, missing):
        pass


def test_garbage_certificate_is_a_remote_error(ss_https: ServedTree) -> None:
    with HttpRemoteReader() as reader, \
            pytest.raises(RemoteError, match=r"^remote 'test': certificate: no PEM certificate"):
        reader.fetch_catalog(spec(ss_https, "not a certificate"))


def test_a_pinned_certificate_is_never_written_to_a_file(
        sstree: SimpleStreamsTree, ss_https: ServedTree, tls_files: TLSFiles,
        private_files_made: list[str]) -> None:
    """The PEM goes straight into the TLS context: no private file to leave behind."""
    publish(sstree)
    with HttpRemoteReader() as reader:
        assert len(reader.fetch_catalog(spec(ss_https, tls_files.ca_pem)).images) == 5
    assert private_files_made == []


def test_an_index_nested_deeper_than_json_can_follow_is_a_remote_error(tmp_path: Path) -> None:
    (tmp_path / "streams" / "v1").mkdir(parents=True)
    (tmp_path / INDEX).write_text("[" * 100_000 + "]" * 100_000)
    with serve(tmp_path) as served, HttpRemoteReader() as reader, \
            pytest.raises(RemoteError) as caught:
        reader.fetch_catalog(spec(served))
    assert str(caught.value) == ("remote 'test': streams/v1/index.json is not valid JSON: "
                                 "nested too deep to read")
