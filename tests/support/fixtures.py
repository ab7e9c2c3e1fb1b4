"""pytest fixtures for a local simplestreams remote (registered by ``tests/conftest.py``).

* ``sstree``: an empty :class:`SimpleStreamsTree` in the test's ``tmp_path``.
* ``ss_http``: ``sstree`` served over plain HTTP on 127.0.0.1.
* ``tls_files``: a test CA and server certificate (made once per session).
* ``ss_https``: ``sstree`` served over HTTPS (TLS 1.3 capable) with ``tls_files``;
  trust it with ``ss_https.tls.ca_pem``.
* ``no_system_cas``: the system's CAs made empty for the test (``SSL_CERT_FILE`` an
  empty file, ``SSL_CERT_DIR`` a missing directory); set ``SSL_CERT_FILE`` after it
  to trust one CA "system-wide".
* ``proxy``: an HTTP CONNECT proxy on 127.0.0.1 (``tests/support/connect_proxy.py``).
* ``private_files_made``: the paths of the private (key) files made during the test.

Both servers log request paths (``served.count("streams/v1/index.json")``) and stop
when the test ends.  Nothing listens anywhere but 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.adapters.private_files import PrivateFiles
from tests.support.connect_proxy import ConnectProxy
from tests.support.ssserver import ServedTree, TLSFiles, make_tls, serve
from tests.support.sstree import SimpleStreamsTree


@pytest.fixture
def sstree(tmp_path: Path) -> SimpleStreamsTree:
    return SimpleStreamsTree(tmp_path / "sstree")


@pytest.fixture
def ss_http(sstree: SimpleStreamsTree) -> Iterator[ServedTree]:
    with serve(sstree.root) as served:
        yield served


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def ss_https(sstree: SimpleStreamsTree, tls_files: TLSFiles) -> Iterator[ServedTree]:
    with serve(sstree.root, tls_files) as served:
        yield served


@pytest.fixture
def no_system_cas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    empty = tmp_path / "no-cas.pem"
    empty.write_text("")
    monkeypatch.setenv("SSL_CERT_FILE", str(empty))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "no-such-dir"))
    return empty


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    served = ConnectProxy()
    try:
        yield served
    finally:
        served.close()


@pytest.fixture
def private_files_made(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    made: list[str] = []
    add = PrivateFiles.add

    def recording(self: PrivateFiles, name: str, text: str) -> str:
        made.append(path := add(self, name, text))
        return path

    monkeypatch.setattr(PrivateFiles, "add", recording)
    return made
