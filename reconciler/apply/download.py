"""Land one planned build in a store: the daemon pulls it, else the tool uploads it.

Invariants:
- A download lands exactly the planned fingerprint or fails: when the daemon
  lands another build (its simplestreams cache is up to an hour old) or cannot
  find the planned one, the files are fetched from the remote, checked against
  its index, and uploaded (``via="upload"``); so it is, without asking the
  daemon, when the remote's URL carries credentials (``RemoteSpec.daemon_can_pull``):
  credentials are never handed to the daemon.
- A pull leaves no image the store did not hold before but the planned one.
- A pull by alias is marked in flight (``PendingPull``) before it starts; the
  marker is cleared only once the pull's outcome is settled: the pull returned,
  failed, or was cancelled as the daemon confirmed.  A pull the tool gave up on
  without that confirmation (``OperationAbandoned``), or one cut short by an
  error, keeps its marker, so what the daemon lands later is this owner's and
  the next plan adopts or deletes it.  A pull that merely takes long is waited
  for: only a pull the daemon failed falls back to an upload.
- A pull or upload that failed to reach the other cluster members ("Failed syncing
  image between servers": :class:`~reconciler.errors.SyncFailed`) fails the change:
  no upload follows, and its in-flight marker stays, so the record the daemon left
  on the importing member is never called done; a later plan adopts or deletes it,
  which apply carries out only once every member is healthy
  (:mod:`reconciler.core.cluster`).
- A download is done only once the daemon reported success and the image reads back
  (the closing ``update_image`` reads it).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, suppress
from dataclasses import dataclass

from reconciler.apply.records import Records
from reconciler.errors import (
    ApplyError,
    NotFound,
    OperationAbandoned,
    OperationFailed,
    SyncFailed,
)
from reconciler.model.changes import ImageDownload
from reconciler.model.config import RemoteSpec
from reconciler.model.fingerprint import short_fingerprint
from reconciler.model.observed import ObservedImage
from reconciler.ports import ImageStore, RemoteReader
from reconciler.render.progress import Reporter

CREDENTIALS_NOT_FOR_DAEMON = (
    "the remote's URL carries credentials (user:password@), which the daemon would store "
    "in the image's source and show to anyone who can list images, so the daemon is not "
    "asked to pull")


@dataclass(frozen=True)
class Landed:
    """How a download landed ``fingerprint``: ``via`` ``pull`` or ``upload``, and, for an
    upload, why the daemon did not pull it (``message``)."""

    fingerprint: str
    via: str
    message: str


class Download:
    """Carries out ``image.download`` changes on one target."""

    def __init__(self, target: str, store: ImageStore, reader: RemoteReader,
                 remotes: Mapping[str, RemoteSpec], reporter: Reporter,
                 records: Records) -> None:
        self.target = target
        self.store = store
        self.reader = reader
        self.remotes = remotes
        self.reporter = reporter
        self.records = records

    def __call__(self, c: ImageDownload) -> Landed:
        """Land ``c.fingerprint``, give it the planned fields, and record it."""
        fp = c.fingerprint
        if c.replace_cached:
            with suppress(NotFound):
                self.store.delete_image(fp)
        remote = self.remotes.get(c.pull.remote)
        landed, why = self._by_daemon(c, remote)
        via = "pull"
        if landed != fp:
            self._upload(c, remote)
            via = "upload"
        self.store.update_image(fp, c.writable)
        if via == "upload":  # a pull that landed was recorded before its marker was cleared
            self.records.remember(c)
        return Landed(fingerprint=fp, via=via, message="" if via == "pull" else why)

    def _by_daemon(self, c: ImageDownload, remote: RemoteSpec | None) -> tuple[str | None, str]:
        """Ask the daemon to pull, unless that would hand it credentials: the fingerprint
        it landed (None: none) and, when that is not the planned one, why."""
        if remote is not None and not remote.daemon_can_pull:
            self.reporter.note(self.target, f"{c.source}: {CREDENTIALS_NOT_FOR_DAEMON}; "
                               "fetching the files, checked against the remote's index, "
                               "and uploading them")
            return None, CREDENTIALS_NOT_FOR_DAEMON
        landed, why = self._pull(c, remote.certificate if remote else None)
        if landed != c.fingerprint:
            self.reporter.note(self.target, f"{c.source}: the daemon did not pull "
                               f"{short_fingerprint(c.fingerprint)} ({why}); uploading the "
                               "files, checked against the remote's index, instead")
        return landed, why

    def _pull(self, c: ImageDownload, certificate: str | None) -> tuple[str | None, str]:
        """Ask the daemon to pull ``c``: the fingerprint it landed (None: none) and, when
        that is not the planned one, why.  The in-flight marker is cleared only once
        the outcome is settled (see the module's invariants)."""
        landed: str | None = None
        why = ""
        wire = c.wire()  # what the reporter knows the change as
        present = {img.fingerprint: img for img in self.store.observe().images}
        marker = self.records.mark_pull(c, present.values())
        settled = False  # whether nothing can land any more that the marker must claim
        try:
            try:
                landed = self.store.pull_image(
                    c.pull, certificate=certificate, writable=c.writable,
                    progress=lambda text: self.reporter.progress(self.target, wire, text))
            except SyncFailed:
                raise  # landed on one member only: a failure, never a reason to upload
            except OperationFailed as exc:
                why = str(exc)
            except OperationAbandoned as exc:
                settled = exc.cancelled
                raise
            why = self._check_landed(c, present, landed) or why
            settled = True
        finally:
            if marker is not None and settled:
                self.records.clear_pull(marker)
        return landed, why

    def _check_landed(
        self, c: ImageDownload, present: Mapping[str, ObservedImage], landed: str | None
    ) -> str:
        """Did the daemon land the planned build?  If so, record it (""); if not, delete
        the other build it landed (unless the store held it before) and say why."""
        if landed == c.fingerprint:
            self.records.remember(c)
            return ""
        if landed is None:
            return ""
        if landed not in present:
            self.store.delete_image(landed)
        return (f"the daemon landed {short_fingerprint(landed)} "
                "(its index of the remote is older)")

    def _upload(self, c: ImageDownload, remote: RemoteSpec | None) -> None:
        """Fetch ``c``'s files from the remote (checked against its index by the reader)
        and upload them; the store must land exactly ``c.fingerprint``."""
        if remote is None or not c.pull.files:
            raise ApplyError(f"target {self.target!r}: cannot land "
                             f"{short_fingerprint(c.fingerprint)} of {c.source}: the daemon "
                             "did not, and the remote offers no files")
        wire = c.wire()  # what the reporter knows the change as
        with ExitStack() as stack:
            parts: list[tuple[str, Iterator[bytes]]] = [
                (f.ftype, stack.enter_context(self.reader.open_file(remote, f)))
                for f in c.pull.files
            ]
            got = self.store.upload_image(
                parts, fingerprint=c.fingerprint, type_=c.pull.image_type,
                progress=lambda text: self.reporter.progress(self.target, wire, text))
        if got != c.fingerprint:
            raise ApplyError(f"target {self.target!r}: upload of {c.source} landed "
                             f"{short_fingerprint(got)}, not {short_fingerprint(c.fingerprint)}")
