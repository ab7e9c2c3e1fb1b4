"""Whom the tool's HTTPS connections trust, by real handshakes with a server on 127.0.0.1.

What incusd and the incus client trust on Linux is the system's CAs (``SSL_CERT_FILE``,
``SSL_CERT_DIR``, else the distribution's bundle) plus a pinned certificate; the tool must
trust the same, for daemons (``open_transport``) and remotes (``HttpRemoteReader``), and
``requests``' own sources (certifi's bundle, ``REQUESTS_CA_BUNDLE``) must not count.  The
same holds through an ``HTTPS_PROXY``.  No incusd is needed: any HTTPS server will do.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from reconciler.adapters.http import open_transport
from reconciler.adapters.remotes.reader import HttpRemoteReader
from reconciler.errors import RemoteError
from reconciler.model.config import RemoteSpec
from tests.support.connect_proxy import ConnectProxy
from tests.support.ssserver import ServedTree, TLSFiles
from tests.support.sstree import SimpleStreamsTree

pytestmark = pytest.mark.integration


def _get(url: str, **kw: str) -> int:
    transport = open_transport(url, **kw)
    try:
        return transport.session.get(transport.base + "/", timeout=(5, 5)).status_code
    finally:
        transport.close()


def _catalog_size(served: ServedTree, certificate: str | None = None) -> int:
    with HttpRemoteReader(retries=0) as reader:
        catalog = reader.fetch_catalog(RemoteSpec(name="test", url=served.url,
                                                  protocol="simplestreams",
                                                  certificate=certificate))
    return len(catalog.images)


@pytest.fixture
def published(sstree: SimpleStreamsTree) -> SimpleStreamsTree:
    sstree.add("tiny", "1.0", "20250101_0000")
    return sstree


@pytest.fixture
def via_proxy(proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch) -> ConnectProxy:
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    return proxy


# -- daemons -------------------------------------------------------------------------------------

def test_a_daemon_without_server_cert_is_trusted_through_the_system_cas(
        ss_https: ServedTree, tls_files: TLSFiles, no_system_cas: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files.ca_cert))
    assert _get(ss_https.url) == 200


def test_a_daemon_ca_in_requests_ca_bundle_only_is_not_trusted(
        ss_https: ServedTree, tls_files: TLSFiles, no_system_cas: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_files.ca_cert))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(tls_files.ca_cert))
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        _get(ss_https.url)


def test_a_pinned_server_cert_that_is_not_self_signed_is_the_trust_root(
        ss_https: ServedTree, tls_files: TLSFiles, no_system_cas: Path) -> None:
    """Incus makes the pinned certificate a root of its own: a CA-signed leaf works."""
    assert _get(ss_https.url, server_cert=tls_files.cert_pem) == 200


def test_a_pinned_daemon_through_a_proxy(ss_https: ServedTree, tls_files: TLSFiles,
                                         no_system_cas: Path, via_proxy: ConnectProxy) -> None:
    assert _get(ss_https.url, server_cert=tls_files.cert_pem) == 200
    assert via_proxy.tunnels == [ss_https.url.removeprefix("https://")]


# -- remotes -------------------------------------------------------------------------------------

def test_a_remote_without_certificate_is_trusted_through_the_system_cas(
        published: SimpleStreamsTree, ss_https: ServedTree, tls_files: TLSFiles,
        no_system_cas: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files.ca_cert))
    assert _catalog_size(ss_https) == 1


def test_a_remote_ca_in_requests_ca_bundle_only_is_not_trusted(
        published: SimpleStreamsTree, ss_https: ServedTree, tls_files: TLSFiles,
        no_system_cas: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_files.ca_cert))
    with pytest.raises(RemoteError, match=r"TLS certificate verification failed .* add it to "
                                          r"the system's CAs"):
        _catalog_size(ss_https)


def test_a_remote_with_a_pinned_leaf_through_a_proxy(
        published: SimpleStreamsTree, ss_https: ServedTree, tls_files: TLSFiles,
        no_system_cas: Path, via_proxy: ConnectProxy) -> None:
    """The pinned leaf (not self-signed) and its DNS name still decide through a tunnel."""
    assert _catalog_size(ss_https, tls_files.cert_pem) == 1
    assert set(via_proxy.tunnels) == {ss_https.url.removeprefix("https://")}


def test_a_remote_through_a_proxy_trusts_the_system_cas(
        published: SimpleStreamsTree, ss_https: ServedTree, tls_files: TLSFiles,
        no_system_cas: Path, via_proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files.ca_cert))
    assert _catalog_size(ss_https) == 1
    assert set(via_proxy.tunnels) == {ss_https.url.removeprefix("https://")}
