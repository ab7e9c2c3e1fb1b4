"""In-memory implementations of the ports, for the pure core's tests.

``FakeStore`` behaves like the daemon where the planner and apply care: pulls by
alias record an update source, pulls of a present fingerprint only rewrite
fields, deleting an image deletes its aliases, the server config has an ETag,
and ``stale`` makes pulls by alias land an older build (the daemon's hour-old
index cache).

``tests/contract/`` holds it to the same assertions as a real ``IncusStore`` on a
real incusd; what that contract found the fake doing differently, and now does as
the daemon does: a pull by fingerprint keeps the ``auto_update`` asked for (no
source needed); ``get_image`` shows the image's aliases; an empty property value
removes the key; a profile that does not exist fails ``update_image`` (StoreError)
and a pull (OperationFailed, after the daemon landed the download with the default
profile); a present image is not uploaded again and a wrong fingerprint fails the
upload; a patch without an ETag is unconditional and one that changes nothing
keeps the ETag.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import tarfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from ruamel.yaml import YAML

from reconciler.adapters.incus_decode import SERVER_DEFAULTS
from reconciler.errors import (
    AlreadyExists,
    NotFound,
    OperationFailed,
    PreconditionFailed,
    StoreError,
)
from reconciler.model.config import RemoteSpec
from reconciler.model.observed import (
    BrokenCopy,
    ClusterMember,
    ObservedAlias,
    ObservedImage,
    Profile,
    TargetState,
    UpdateSource,
    Verification,
)
from reconciler.model.plan import PullSource, Writable
from reconciler.model.remote import RemoteCatalog, RemoteFile

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class FakeReader:
    def __init__(self, catalogs: Mapping[str, RemoteCatalog]) -> None:
        self.catalogs = dict(catalogs)
        self.fetches: list[str] = []

    def fetch_catalog(self, remote: RemoteSpec) -> RemoteCatalog:
        self.fetches.append(remote.name)
        return self.catalogs[remote.name]

    @contextmanager
    def open_file(self, remote: RemoteSpec, file: RemoteFile) -> Iterator[Iterator[bytes]]:
        yield iter([file.sha256.encode()])


class FakeStore:
    """One target.  ``images`` maps fingerprint to a mutable ObservedImage (replaced on write)."""

    def __init__(
        self,
        target: str = "local",
        *,
        project: str = "default",
        host_architecture: str = "x86_64",
        universe: Mapping[str, RemoteCatalog] | None = None,
    ) -> None:
        self.target = target
        self.project = project
        self.host_architecture = host_architecture
        self.universe = {c.url: c for c in (universe or {}).values()}
        self.images: dict[str, ObservedImage] = {}
        self.aliases: dict[str, tuple[str, str]] = {}
        self.config: dict[str, str] = {}
        self.etag = 0
        self.stale: dict[str, str] = {}
        """fingerprint the daemon's cache still resolves an alias pull to: {new fp: old fp}."""
        self.calls: list[str] = []
        self.profiles: dict[str, Profile] = {"default": Profile(name="default")}
        self.instances: dict[str, tuple[str, ...]] = {}
        self.images_free_bytes: int | None = None
        self.kernel_cgroup: str | None = None
        self.before_alias_create: dict[str, Callable[[], None]] = {}
        """Run once just before the alias of that name is created (someone racing the tool)."""
        self.fail_alias: set[str] = set()
        """Alias names whose move or delete fails (the daemon or the connection gave up)."""
        self.members: tuple[ClusterMember, ...] = ()
        """A clustered target's members (empty: a standalone daemon)."""
        self.broken: dict[str, set[str]] = {}
        """fingerprint -> members whose copy of it is broken ("": the standalone daemon)."""
        self.reaches_members = True
        """False: like a unix-socket target, ``verify_copies`` reaches no other member."""

    # -- helpers for tests --------------------------------------------------------------------

    def put(self, image: ObservedImage, *aliases: str) -> None:
        self.images[image.fingerprint] = image.model_copy(update={"aliases": ()})
        for name in aliases:
            self.aliases[name] = (image.fingerprint, "")

    # -- ImageStore ---------------------------------------------------------------------------

    def observe(self) -> TargetState:
        """Like ``IncusStore.observe``: the whole server config, ownership records
        included (the core reads those: ``core.inventory.with_inventories``)."""
        self.calls.append("observe")
        images = []
        for _, img in sorted(self.images.items()):
            images.append(self._with_aliases(img))
        return TargetState(target=self.target, project=self.project,
                           effective_project=self.project,
                           host_architecture=self.host_architecture,
                           server_config=dict(self.config),
                           server_defaults=dict(SERVER_DEFAULTS), config_etag=str(self.etag),
                           images=tuple(images), profiles=dict(self.profiles),
                           instances=dict(self.instances),
                           images_free_bytes=self.images_free_bytes,
                           kernel_cgroup=self.kernel_cgroup,
                           clustered=bool(self.members), members=self.members,
                           member=self.members[0].name if self.members else "")

    def verify_copies(self, fingerprints: Sequence[str], state: TargetState) -> Verification:
        """Like ``IncusStore.verify_copies``: every healthy member reachable is checked
        (one export per image and member, counted in ``calls``), the others unchecked."""
        fps = tuple(sorted(set(fingerprints)))
        if not state.clustered:
            reach, unchecked = [""], {}
        else:
            reach = [m.name for m in state.members if m.name == state.member
                     or (m.healthy and self.reaches_members)]
            unchecked = {m.name: ("no client certificate to reach it" if m.healthy
                                  else f"it is {m.status}")
                         for m in state.members if m.name not in reach}
        self.calls += [f"export {fp} via {m or self.target}" for m in reach for fp in fps]
        broken = tuple(BrokenCopy(fingerprint=fp, member=m, detail="no such file or directory")
                       for fp in fps for m in reach if m in self.broken.get(fp, set()))
        return Verification(fingerprints=fps, checked=tuple(sorted(reach)),
                            unchecked=unchecked, broken=broken)

    def check(self) -> None:
        """Like ``IncusStore.check``: here a whole observation, so a fake whose
        ``observe`` fails fails its check too."""
        self.observe()

    def abandon(self) -> None:
        """Nothing is under way in a fake: only noted (``calls``)."""
        self.calls.append("abandon")

    def get_image(self, fingerprint: str) -> ObservedImage | None:
        """The image with its aliases, as ``GET /1.0/images/<fp>`` shows them."""
        self.calls.append(f"get {fingerprint}")
        img = self.images.get(fingerprint)
        return None if img is None else self._with_aliases(img)

    def pull_image(self, pull: PullSource, *, certificate: str | None, writable: Writable,
                   progress: object, present: object = None, accepted: object = None) -> str:
        """Instant: ``accepted`` is never called (several pulls never overlap)."""
        self.calls.append(f"pull {pull.alias or pull.fingerprint}")
        catalog = self.universe.get(pull.server)
        if catalog is None:
            raise OperationFailed(self.target, f"cannot reach {pull.server}")
        if pull.alias is not None:
            build = None
            for img in catalog.images:
                if pull.alias in img.aliases and img.type == pull.image_type:
                    build = img
            if build is None:
                raise OperationFailed(self.target, f"alias {pull.alias} not found")
            fp = self.stale.get(build.fingerprint, build.fingerprint)
            build = catalog.by_fingerprint(fp) or build
        else:
            build = catalog.by_fingerprint(pull.fingerprint or "")
            if build is None or pull.fingerprint in self.stale.values():
                raise OperationFailed(self.target, f"image {pull.fingerprint} not found")
            if build.fingerprint in self.stale:
                raise OperationFailed(self.target, f"image {pull.fingerprint} not found")
        fp = build.fingerprint
        props = {k: v for k, v in writable.properties.items() if v is not None}
        unknown = [p for p in writable.profiles if p not in self.profiles]
        if unknown and fp in self.images:
            raise OperationFailed(self.target, f"Profile {unknown[0]!r} doesn't exist",
                                  status=500)
        source = (UpdateSource(server=pull.server, protocol=pull.protocol, alias=pull.alias)
                  if pull.alias else None)
        if unknown:
            # The daemon lands the download (public as asked, the project's default
            # profile, the remote's properties; a pull by alias with its source and
            # auto_update), then fails to apply the rest.
            self.images[fp] = ObservedImage(
                fingerprint=fp, type=build.type, architecture=build.architecture,
                public=writable.public, properties=dict(build.properties),
                auto_update=writable.auto_update and source is not None,
                expires_at=build.expires_at, created_at=build.created_at, uploaded_at=EPOCH,
                size=build.size, update_source=source)
            raise OperationFailed(self.target, f"Profile {unknown[0]!r} doesn't exist",
                                  status=500)
        held = sorted(n for n, (t, _) in self.aliases.items() if t == fp)
        if fp in self.images and held and pull.alias is None:
            raise OperationFailed(self.target, f"Alias already exists: {held[0]}")
        if fp in self.images:
            # The daemon rewrites a present image's writable fields with the request's;
            # IncusStore puts them back, so through the port the image is unchanged.
            return fp
        self.images[fp] = ObservedImage(
            fingerprint=fp, type=build.type, architecture=build.architecture,
            auto_update=writable.auto_update, public=writable.public,
            profiles=writable.profiles, properties={**build.properties, **props},
            expires_at=build.expires_at, created_at=build.created_at, uploaded_at=EPOCH,
            size=build.size, update_source=source)
        return fp

    def upload_image(self, parts: list[tuple[str, Iterator[bytes]]], *, fingerprint: str,
                     type_: str, progress: object) -> str:
        """Like ``IncusStore``: a present image is not uploaded again; a fingerprint that
        the bytes do not hash to fails.  ``FakeReader`` serves stand-in bytes, so the
        fake checks the hash only against real image files (a tarball first part), and
        otherwise requires a build of its universe; real files also give the image the
        properties of their ``metadata.yaml``, as the daemon does."""
        self.calls.append(f"upload {fingerprint}")
        if fingerprint in self.images:
            return fingerprint
        blobs = [b"".join(chunks) for _, chunks in parts]
        data = b"".join(blobs)
        meta = _metadata_properties(blobs[0]) if blobs else None
        build = None
        for catalog in self.universe.values():
            build = build or catalog.by_fingerprint(fingerprint)
        if build is None or (meta is not None and hashlib.sha256(data).hexdigest() != fingerprint):
            raise OperationFailed(self.target, "Fingerprints don't match", status=400)
        self.images[fingerprint] = ObservedImage(
            fingerprint=fingerprint, type=build.type, architecture=build.architecture,
            properties=dict(build.properties if meta is None else meta),
            created_at=build.created_at, uploaded_at=EPOCH, size=build.size)
        return fingerprint

    def update_image(self, fingerprint: str, writable: Writable) -> None:
        self.calls.append(f"update {fingerprint}")
        img = self._image(fingerprint)
        self._check_profiles(writable.profiles)
        props = dict(img.properties)
        for k, v in writable.properties.items():
            if v in (None, ""):
                props.pop(k, None)
            else:
                props[k] = v
        self.images[fingerprint] = img.model_copy(update={
            "auto_update": writable.auto_update, "public": writable.public,
            "profiles": writable.profiles, "properties": props,
            "expires_at": writable.expires_at})

    def delete_image(self, fingerprint: str) -> None:
        self.calls.append(f"delete {fingerprint}")
        self._image(fingerprint)
        del self.images[fingerprint]
        self.broken.pop(fingerprint, None)
        self.aliases = {n: v for n, v in self.aliases.items() if v[0] != fingerprint}

    def create_alias(self, name: str, target: str, description: str) -> None:
        self.calls.append(f"alias create {name}")
        hook = self.before_alias_create.pop(name, None)
        if hook is not None:
            hook()
        if name in self.aliases:
            raise AlreadyExists(self.target, f"Alias {name!r} already exists", status=409)
        self._image(target)
        self.aliases[name] = (target, description)

    def move_alias(self, name: str, target: str) -> None:
        self.calls.append(f"alias move {name}")
        if name in self.fail_alias:
            raise OperationFailed(self.target, f"could not move alias {name!r}")
        self._image(target)
        _, desc = self._alias(name)
        self.aliases[name] = (target, desc)

    def update_alias(self, name: str, description: str) -> None:
        self.calls.append(f"alias update {name}")
        target, _ = self._alias(name)
        self.aliases[name] = (target, description)

    def delete_alias(self, name: str) -> None:
        self.calls.append(f"alias delete {name}")
        if name in self.fail_alias:
            raise OperationFailed(self.target, f"could not delete alias {name!r}")
        self._alias(name)
        del self.aliases[name]

    def get_aliases(self) -> tuple[ObservedAlias, ...]:
        self.calls.append("aliases")
        return tuple(ObservedAlias(name=n, description=d, target=t)
                     for n, (t, d) in sorted(self.aliases.items()))

    def get_server_config(self) -> tuple[dict[str, str], str]:
        self.calls.append("config")
        return dict(self.config), str(self.etag)

    def patch_server_config(self, changes: dict[str, str], etag: str) -> str:
        """With an empty ``etag`` no ``If-Match`` is sent: the patch is unconditional.
        The ETag is the config's, so a patch that changes nothing keeps it.  Returns the
        new ETag, as ``IncusStore`` does when it can tell."""
        self.calls.append("patch config")
        if etag and etag != str(self.etag):
            raise PreconditionFailed(self.target, "ETag doesn't match", status=412)
        before = dict(self.config)
        for k, v in changes.items():
            if v == "":
                self.config.pop(k, None)
            else:
                self.config[k] = v
        if self.config != before:
            self.etag += 1
        return str(self.etag)

    def _with_aliases(self, img: ObservedImage) -> ObservedImage:
        fp = img.fingerprint
        al = tuple(ObservedAlias(name=n, description=d, target=fp)
                   for n, (t, d) in sorted(self.aliases.items()) if t == fp)
        return img.model_copy(update={"aliases": al})

    def _check_profiles(self, names: tuple[str, ...]) -> None:
        for name in names:
            if name not in self.profiles:
                raise StoreError(self.target, f"Profile {name!r} doesn't exist", status=500)

    def _image(self, fp: str) -> ObservedImage:
        if fp not in self.images:
            raise NotFound(self.target, f"Image {fp!r} not found", status=404)
        return self.images[fp]

    def _alias(self, name: str) -> tuple[str, str]:
        if name not in self.aliases:
            raise NotFound(self.target, f"Alias {name!r} not found", status=404)
        return self.aliases[name]


def _metadata_properties(first: bytes) -> dict[str, str] | None:
    """The ``properties`` of ``metadata.yaml`` in an image's first file, or None when it
    is not a tarball holding one (the stand-in bytes of ``FakeReader``)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(first)) as tar:
            member = tar.extractfile("metadata.yaml")
            text = member.read().decode() if member is not None else ""
    except (tarfile.TarError, KeyError, OSError, EOFError, lzma.LZMAError):
        return None
    doc = YAML(typ="safe").load(text) or {}
    props = doc.get("properties") if isinstance(doc, dict) else None
    return {str(k): str(v) for k, v in (props or {}).items() if v not in (None, "")}
