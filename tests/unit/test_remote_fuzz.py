"""Any remote index gives a catalog or a :class:`RemoteError`, never a crash (exit 3).

Hypothesis draws documents near real ones (``tests/support/nearjson.py``): a
simplestreams ``index.json`` and products file like the public server's, and an Incus
server's image list.  Every way plan and apply read a catalog is then used (the alias
table whole, resolving, each build by fingerprint, every build); whatever is raised
must be a :class:`RemoteError`, which the CLI prints as one line with exit 1.
``FUZZ_EXAMPLES=5000`` searches longer, at random.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.adapters.remotes import incus, simplestreams
from reconciler.errors import RemoteError
from reconciler.model.config import RemoteSpec
from reconciler.model.remote import RemoteCatalog
from tests.support.bigindex import public_like
from tests.support.nearjson import near

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0"))
"""0: the same examples each run (fast, repeatable); N: a random search of N examples."""
FUZZ = settings(max_examples=EXAMPLES or 150, deadline=None, derandomize=not EXAMPLES,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

SS = RemoteSpec(name="r", url="https://images.example", protocol="simplestreams")
INCUS = RemoteSpec(name="r", url="https://images.example", protocol="incus")

INDEX = {"format": "index:1.0", "index": {"images": {
    "datatype": "image-downloads", "path": "streams/v1/images.json",
    "format": "products:1.0", "products": ["os0:r0:amd64:default"]}}}
PRODUCTS = public_like(products=3, versions=2, no_vm_every=2)
LISTED = {
    "fingerprint": "a" * 64, "architecture": "x86_64", "type": "container", "size": 1024,
    "public": True, "properties": {"os": "Debian", "serial": "20260101", "description": "d",
                                   "requirements.secureboot": "false"},
    "aliases": [{"name": "debian/12", "description": ""}],
    "created_at": "2026-01-01T00:00:00Z", "expires_at": "2027-01-01T00:00:00Z",
}


def use(catalog: RemoteCatalog) -> None:
    """Read the catalog every way the planner and apply do."""
    for key in list(catalog.alias_table):
        name, type_, arch = key.rsplit("|", 2)
        image = catalog.resolve(name, type_, arch)
        assert image is not None
        assert catalog.by_fingerprint(image.fingerprint) == image
    for image in catalog.images:
        assert catalog.by_fingerprint(image.fingerprint) is not None


@FUZZ
@given(index=near(INDEX))
def test_any_index_is_a_list_of_paths_or_a_remote_error(index: Any) -> None:
    try:
        paths = simplestreams.parse_index(index, remote="r")
    except RemoteError:
        return
    assert all(isinstance(p, str) and p for p in paths)


@FUZZ
@given(doc=near(PRODUCTS), lookups=st.lists(st.sampled_from(["os0/r0/default", "os0/r0",
                                                             "os0/r0/cloud", "x"]),
                                            max_size=3))
def test_any_products_file_is_a_catalog_or_a_remote_error(doc: Any, lookups: list[str]
                                                          ) -> None:
    with contextlib.suppress(RemoteError):
        catalog = simplestreams.build_catalog(SS, [doc], "x86_64",
                                              paths=["streams/v1/images.json"])
        for name in lookups:  # resolving first, as plan does, before the table is whole
            catalog.resolve(name, "container", "x86_64")
        use(catalog)


@FUZZ
@given(listed=near([LISTED, LISTED]))
def test_any_incus_image_list_is_a_catalog_or_a_remote_error(listed: Any) -> None:
    with contextlib.suppress(RemoteError):
        use(incus.build_catalog(INCUS, listed))


@pytest.mark.parametrize("doc", [PRODUCTS])
def test_the_templates_themselves_make_catalogs(doc: Any) -> None:
    """The fuzzing starts from documents that read cleanly."""
    assert simplestreams.parse_index(INDEX) == ["streams/v1/images.json"]
    catalog = simplestreams.build_catalog(SS, [doc], "x86_64")
    use(catalog)
    assert len(catalog.alias_table) > 0
    assert len(incus.build_catalog(INCUS, [LISTED]).alias_table) == 1
