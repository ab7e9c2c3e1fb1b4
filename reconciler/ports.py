"""The narrow interfaces between the pure core and the outside world.

``reconciler.pipeline`` (which observes the stores) and ``reconciler.apply.executor``
talk only to these; the CLI builds the real adapters (``reconciler.adapters``), tests
pass in-memory ones (``tests/support/fakes.py``).  Methods use Incus's own verbs and names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from reconciler.model.config import RemoteSpec
from reconciler.model.observed import ObservedAlias, ObservedImage, TargetState, Verification
from reconciler.model.plan import PullSource, Writable
from reconciler.model.remote import RemoteCatalog, RemoteFile

DEFAULT_OPERATION_TIMEOUT = 3600.0
"""How long, by default, a store waits for one daemon operation (``--operation-timeout``)."""

DEFAULT_PARALLELISM = 10
"""How many targets ``plan``, ``apply`` and ``status`` work on at once (``--parallelism``)."""

Progress = Callable[[str], None]
"""Receives the daemon's ``download_progress`` text (or the tool's own upload progress)."""


class RemoteReader(Protocol):
    """Reads remote image servers.  One catalog fetch per remote per run."""

    def fetch_catalog(self, remote: RemoteSpec) -> RemoteCatalog:
        """Every build the remote serves.  Raises ``RemoteError`` naming the remote."""
        ...

    def open_file(
        self, remote: RemoteSpec, file: RemoteFile
    ) -> AbstractContextManager[Iterator[bytes]]:
        """Stream one image file, checked against ``file.sha256`` and ``file.size``."""
        ...


class ImageStore(Protocol):
    """One target: an Incus daemon and one project.

    Every mutating call returns only once the daemon has finished (operations are
    waited on, however long they run, and their real outcome read); failures raise
    ``StoreError``.  A store may bound the wait for one operation: it then cancels
    the operation and raises ``OperationAbandoned`` (never ``OperationFailed``).
    """

    target: str
    project: str

    def observe(self) -> TargetState:
        """A snapshot with a constant number of list calls, whatever the image count."""
        ...

    def check(self) -> None:
        """Read what a write to this target depends on, in a constant number of
        requests: that the daemon answers and trusts this client and, on a cluster,
        that it can list its members and most of them accept connections (else
        ``NoQuorum``).  Raises as :meth:`observe` would; writes nothing."""
        ...

    def abandon(self) -> None:
        """Give up the reads under way: the threads waiting for their answers get an
        error at once (writes under way are left to finish).  For reads whose results
        nobody will use (an interrupt during an observation); the store stays usable."""
        ...

    def get_image(self, fingerprint: str) -> ObservedImage | None: ...

    def verify_copies(self, fingerprints: Sequence[str], state: TargetState) -> Verification:
        """Check that each image's files can be read through every member of ``state``
        (``state`` is this store's observation; a standalone daemon is its one member).

        One export request per image and member whose answer's status is read and
        whose body is not.  A member that cannot be reached, or whose answers say
        nothing about the image, is ``unchecked`` with the reason; nothing raises for
        one member.  Members are checked concurrently, each request bounded in time.
        """
        ...

    def pull_image(
        self, pull: PullSource, *, certificate: str | None, writable: Writable, progress: Progress,
        present: Mapping[str, ObservedImage] | None = None,
        accepted: Callable[[], None] | None = None,
    ) -> str:
        """Ask the daemon to pull; return the fingerprint it actually landed.

        Whether the pull succeeds or fails (``OperationFailed``), an image that was in
        the store before keeps its writable fields: a pull never rewrites them.
        ``present`` is what the caller knows the store holds (None: the store looks).
        ``accepted`` is called once the daemon has taken the pull on and it runs
        there (a store that cannot tell never calls it).
        """
        ...

    def upload_image(
        self, parts: list[tuple[str, Iterator[bytes]]], *, fingerprint: str, type_: str,
        progress: Progress,
    ) -> str:
        """Upload image files (metadata first); the daemon checks ``fingerprint``."""
        ...

    def update_image(self, fingerprint: str, writable: Writable) -> None:
        """Read the image with its ETag, merge ``writable`` over it, PUT it with If-Match."""
        ...

    def delete_image(self, fingerprint: str) -> None: ...

    def create_alias(self, name: str, target: str, description: str) -> None: ...

    def move_alias(self, name: str, target: str) -> None:
        """Retarget an existing alias in one request (its description is kept)."""
        ...

    def update_alias(self, name: str, description: str) -> None: ...

    def delete_alias(self, name: str) -> None: ...

    def get_aliases(self) -> tuple[ObservedAlias, ...]:
        """Every alias of the project, one list call (no image is read)."""
        ...

    def get_server_config(self) -> tuple[dict[str, str], str]:
        """The daemon's server config and ``GET /1.0``'s ETag."""
        ...

    def patch_server_config(self, changes: dict[str, str], etag: str) -> str | None:
        """``PATCH /1.0`` with If-Match; raises ``PreconditionFailed`` on a stale ETag.

        Returns the config's new ETag when the store can tell ("" or None: unknown)."""
        ...
