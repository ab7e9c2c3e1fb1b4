"""The catalog as it was built before it was lazy: every build made, one sort over all.

A test oracle only: :func:`eager_catalog` must choose what
:func:`reconciler.adapters.remotes.simplestreams.build_catalog` chooses.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.adapters.remotes.simplestreams import Candidate, ProductsReader, daemon_order
from reconciler.model.arch import canonical
from reconciler.model.config import RemoteSpec
from reconciler.model.remote import RemoteCatalog, RemoteImage


def eager_catalog(remote: RemoteSpec, products_docs: Sequence[object],
                  host_arch: str | None = None) -> RemoteCatalog:
    candidates: list[Candidate] = []
    for number, doc in enumerate(products_docs):
        candidates.extend(ProductsReader(remote.name, f"products file #{number + 1}").read(doc))
    ordered = daemon_order(candidates)
    alias_table: dict[str, str] = {}
    won: dict[str, list[str]] = {}
    native = canonical(host_arch) if host_arch else None
    for cand in ordered:
        image = cand.image
        names = won.setdefault(image.fingerprint, [])
        for alias in cand.alias_names:
            for name, short in ((alias, True), (f"{alias}/{cand.raw_arch}", False)):
                key = RemoteCatalog.alias_key(name, image.type, image.architecture)
                if key in alias_table:
                    continue
                alias_table[key] = image.fingerprint
                listed = not short or native is None or native == image.architecture
                if listed and name not in names:
                    names.append(name)
    images: list[RemoteImage] = []
    seen: set[str] = set()
    for cand in ordered:
        fp = cand.image.fingerprint
        if fp not in seen:
            seen.add(fp)
            images.append(cand.image.model_copy(update={"aliases": tuple(won[fp])}))
    return RemoteCatalog(remote=remote.name, url=remote.url, protocol="simplestreams",
                         images=tuple(images), alias_table=alias_table)
