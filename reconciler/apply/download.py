"""Land one planned build in a store: the daemon pulls it, else the tool uploads it.

Invariants:
- A download lands exactly the planned fingerprint or fails: when the daemon
  lands another build (its simplestreams cache is up to an hour old) or cannot
  find the planned one, the files are fetched from the remote, checked against
  its index, and uploaded (``via="upload"``); so it is, without asking the
  daemon, when the remote's URL carries credentials (``RemoteSpec.daemon_can_pull``):
  credentials are never handed to the daemon.
- A pull leaves no image the store did not hold before but the planned one
  (an image another download of this run lands, :attr:`Start.claimed`, is left
  to that download).
- A download looks at the store only through the landed image: what the store
  held before comes from apply's observation (:attr:`Start.present`), and after
  landing the one image is read (``get_image``), which says whether its writable
  fields still need writing (``update_image`` is skipped when they hold).  A
  download is done only once the daemon reported success and the image reads back.
- A pull by alias is marked in flight (``PendingPull``, by the caller, before it
  starts: :attr:`Start.marker`); the marker is cleared only once the pull's
  outcome is settled: the pull returned, failed, or was cancelled as the daemon
  confirmed.  A pull the tool gave up on without that confirmation
  (``OperationAbandoned``), or one cut short by an error, keeps its marker, so what
  the daemon lands later is this owner's and the next plan adopts or deletes it.
  A pull that merely takes long is waited for: only a pull the daemon failed
  falls back to an upload.  A pull that landed its planned image, which the
  marker claims, is recorded with the next write (:meth:`Records.defer_remember`).
- A pull or upload that failed to reach the other cluster members ("Failed syncing
  image between servers": :class:`~reconciler.errors.SyncFailed`) fails the change:
  no upload follows, and its in-flight marker stays, so the record the daemon left
  on the importing member is never called done; a later plan adopts or deletes it,
  which apply carries out only once every member is healthy
  (:mod:`reconciler.core.cluster`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, suppress
from dataclasses import dataclass

from reconciler.apply.records import Records
from reconciler.core.applied import holds, written
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
from reconciler.model.observed import ObservedImage, PendingPull
from reconciler.ports import ImageStore, RemoteReader
from reconciler.render.progress import Reporter

CREDENTIALS_NOT_FOR_DAEMON = (
    "the remote's URL carries credentials (user:password@), which the daemon would store "
    "in the image's source and show to anyone who can list images, so the daemon is not "
    "asked to pull")


@dataclass(frozen=True)
class Landed:
    """How a download landed ``fingerprint``: ``via`` ``pull`` or ``upload``, for an
    upload why the daemon did not pull it (``message``), and the image as it is now."""

    fingerprint: str
    via: str
    message: str
    image: ObservedImage | None = None


@dataclass(frozen=True)
class Start:
    """What one download starts from: the store's images as apply knows them
    (``present``), the fingerprints other downloads of this run land (``claimed``),
    its in-flight marker (None: not a pull by alias), and who hears that the daemon
    took its pull on (``accepted``)."""

    present: Mapping[str, ObservedImage]
    claimed: frozenset[str] = frozenset()
    marker: PendingPull | None = None
    accepted: Callable[[], None] | None = None
    """Called once the daemon has taken the pull on (see ``ImageStore.pull_image``)."""


class Download:
    """Carries out ``image.download`` changes on one target (several may run at once)."""

    def __init__(self, target: str, store: ImageStore, reader: RemoteReader,
                 remotes: Mapping[str, RemoteSpec], records: Records) -> None:
        self.target = target
        self.store = store
        self.reader = reader
        self.remotes = remotes
        self.records = records

    def __call__(self, c: ImageDownload, start: Start, reporter: Reporter) -> Landed:
        """Land ``c.fingerprint``, give it the planned fields, and record it."""
        run = _Run(self, c, start, reporter)
        return run.land()


class _Run:
    """One download: its change, where it starts from, and who hears about it."""

    def __init__(self, d: Download, c: ImageDownload, start: Start, reporter: Reporter) -> None:
        self.d = d
        self.c = c
        self.start = start
        self.reporter = reporter
        self.present = start.present
        self.wire = c.wire()  # what the reporter knows the change as

    def land(self) -> Landed:
        c, fp = self.c, self.c.fingerprint
        if c.replace_cached:
            with suppress(NotFound):
                self.d.store.delete_image(fp)
            self.present = {k: v for k, v in self.present.items() if k != fp}
        remote = self.d.remotes.get(c.pull.remote)
        landed, why = self._by_daemon(remote)
        via = "pull"
        if landed != fp:
            self._upload(remote)
            via = "upload"
        image = self._read()
        self._record(via, image)
        image = self._with_fields(image)
        return Landed(fingerprint=fp, via=via, message="" if via == "pull" else why,
                      image=image)

    def _progress(self, text: str) -> None:
        self.reporter.progress(self.d.target, self.wire, text)

    def _by_daemon(self, remote: RemoteSpec | None) -> tuple[str | None, str]:
        """Ask the daemon to pull, unless that would hand it credentials: the fingerprint
        it landed (None: none) and, when that is not the planned one, why."""
        c, target = self.c, self.d.target
        if remote is not None and not remote.daemon_can_pull:
            self.reporter.note(target, f"{c.source}: {CREDENTIALS_NOT_FOR_DAEMON}; "
                               "fetching the files, checked against the remote's index, "
                               "and uploading them")
            return None, CREDENTIALS_NOT_FOR_DAEMON
        landed, why = self._pull(remote.certificate if remote else None)
        if landed != c.fingerprint:
            self.reporter.note(target, f"{c.source}: the daemon did not pull "
                               f"{short_fingerprint(c.fingerprint)} ({why}); uploading the "
                               "files, checked against the remote's index, instead")
        return landed, why

    def _pull(self, certificate: str | None) -> tuple[str | None, str]:
        """Ask the daemon to pull: the fingerprint it landed (None: none) and, when that
        is not the planned one, why.  The in-flight marker is cleared only once the
        outcome is settled (see the module's invariants), and not here when the
        planned image landed (:meth:`_record` does, with its record)."""
        landed: str | None = None
        why = ""
        settled = False  # whether nothing can land any more that the marker must claim
        try:
            try:
                landed = self.d.store.pull_image(
                    self.c.pull, certificate=certificate, writable=self.c.writable,
                    progress=self._progress, present=self.present,
                    accepted=self.start.accepted)
            except SyncFailed:
                raise  # landed on one member only: a failure, never a reason to upload
            except OperationFailed as exc:
                why = str(exc)
            except OperationAbandoned as exc:
                settled = exc.cancelled
                raise
            why = self._check_landed(landed) or why
            settled = True
        finally:
            marker = self.start.marker
            if marker is not None and settled and landed != self.c.fingerprint:
                self.d.records.clear_pull(marker)
        return landed, why

    def _check_landed(self, landed: str | None) -> str:
        """Did the daemon land the planned build?  If not, delete the other build it
        landed (unless the store held it before, or another download lands it) and
        say why."""
        if landed is None or landed == self.c.fingerprint:
            return ""
        if landed not in self.present and landed not in self.start.claimed:
            self.d.store.delete_image(landed)
        return (f"the daemon landed {short_fingerprint(landed)} "
                "(its index of the remote is older)")

    def _upload(self, remote: RemoteSpec | None) -> None:
        """Fetch the files from the remote (checked against its index by the reader) and
        upload them; the store must land exactly the planned fingerprint."""
        c, target = self.c, self.d.target
        if remote is None or not c.pull.files:
            raise ApplyError(f"target {target!r}: cannot land "
                             f"{short_fingerprint(c.fingerprint)} of {c.source}: the daemon "
                             "did not, and the remote offers no files")
        with ExitStack() as stack:
            parts: list[tuple[str, Iterator[bytes]]] = [
                (f.ftype, stack.enter_context(self.d.reader.open_file(remote, f)))
                for f in c.pull.files
            ]
            got = self.d.store.upload_image(
                parts, fingerprint=c.fingerprint, type_=c.pull.image_type,
                progress=self._progress)
        if got != c.fingerprint:
            raise ApplyError(f"target {target!r}: upload of {c.source} landed "
                             f"{short_fingerprint(got)}, not {short_fingerprint(c.fingerprint)}")

    def _read(self) -> ObservedImage:
        """The landed image, read (one ``GET``)."""
        fp = self.c.fingerprint
        image = self.d.store.get_image(fp)
        if image is None:
            raise ApplyError(f"target {self.d.target!r}: the daemon reported success but "
                             f"image {fp} is not in the store")
        return image

    def _with_fields(self, image: ObservedImage) -> ObservedImage:
        """Write the planned fields unless ``image`` has them already; the image now."""
        if holds(image, self.c.writable):
            return image
        self.d.store.update_image(image.fingerprint, self.c.writable)
        return written(image, self.c.writable)

    def _record(self, via: str, image: ObservedImage) -> None:
        """Record the landed image: with the next write when the marker claims it
        meanwhile (a pull by alias that landed it), else now."""
        marker = self.start.marker
        source = image.update_source
        if (via == "pull" and marker is not None and source is not None
                and (source.server, source.alias) == (marker.server, marker.alias)
                and image.fingerprint not in marker.before):
            self.d.records.defer_remember(self.c, clear=marker)
            return
        clear = marker if via == "pull" else None  # after a failed pull it is cleared
        self.d.records.remember(self.c, clear=clear)
