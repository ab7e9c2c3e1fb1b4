"""The contract fixture: one ``ImageStore`` port, two implementations.

``backend`` is parametrized: ``fake`` is :class:`tests.support.fakes.FakeStore`,
``incus`` a real :class:`reconciler.adapters.incus.IncusStore` on a fresh incusd
(marked ``integration``; a missing incusd fails on CI and is skipped elsewhere,
see ``tests/conftest.py``).  Both see the same remote: a simplestreams tree served
on 127.0.0.1 (the daemon pulls from it; the fake is handed the catalog the tool's
own reader reads from it), so every test asserts the same values on both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from reconciler.adapters.incus import connect
from reconciler.adapters.remotes.reader import HttpRemoteReader
from reconciler.model.config import RemoteSpec
from reconciler.model.observed import Profile
from reconciler.model.remote import RemoteCatalog, RemoteImage
from reconciler.ports import ImageStore
from tests.conftest import IncusdFactory
from tests.support.fakes import FakeStore
from tests.support.ssserver import ServedTree
from tests.support.sstree import SimpleStreamsTree

ALIAS = "tiny/1.0"
OLD_SERIAL = "20260101_0000"
NEW_SERIAL = "20260102_0000"


@dataclass(frozen=True)
class Remote:
    """The served tree: ``old`` and ``new`` builds of ``tiny/1.0`` (``ALIAS`` names ``new``)."""

    url: str
    catalog: RemoteCatalog
    old: RemoteImage
    new: RemoteImage


@dataclass(frozen=True)
class Backend:
    """A store under contract, and the out-of-band setup a test needs on either side.

    ``add_profile(name)`` creates a profile in the store's project, as
    ``incus profile create`` would.
    """

    kind: str
    store: ImageStore
    add_profile: Callable[[str], None]


@pytest.fixture
def remote(sstree: SimpleStreamsTree, ss_http: ServedTree) -> Iterator[Remote]:
    old = sstree.add("tiny", "1.0", OLD_SERIAL)
    new = sstree.add("tiny", "1.0", NEW_SERIAL)
    spec = RemoteSpec(name="test", url=ss_http.url, protocol="simplestreams")
    with HttpRemoteReader() as reader:
        catalog = reader.fetch_catalog(spec)
    by_fp = {img.fingerprint: img for img in catalog.images}
    yield Remote(url=ss_http.url, catalog=catalog, old=by_fp[old.fingerprint],
                 new=by_fp[new.fingerprint])


@pytest.fixture(params=["fake", pytest.param("incus", marks=pytest.mark.integration)])
def backend(request: pytest.FixtureRequest, remote: Remote) -> Iterator[Backend]:
    if request.param == "fake":
        fake = FakeStore(universe={"test": remote.catalog})

        def fake_profile(name: str) -> None:
            fake.profiles[name] = Profile(name=name)

        yield Backend("fake", fake, fake_profile)
        return
    factory: IncusdFactory = request.getfixturevalue("incusd_factory")
    daemon = factory()

    def real_profile(name: str) -> None:
        daemon.api("POST", "/1.0/profiles", {"name": name, "config": {}, "devices": {}})

    with connect(daemon.target()) as store:
        yield Backend("incus", store, real_profile)
