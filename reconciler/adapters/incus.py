"""``ImageStore`` over the Incus REST API: one daemon, one project.

Invariants:

* Every request carries ``?project=<project>`` (the project the file names; the
  daemon itself redirects image calls of a ``features.images=false`` project to the
  default project).  ``observe`` lists the images through that project too: the
  daemon serves the effective project's images, but an image's ``profiles`` are
  kept per project, and only the file's project shows the ones ``update_image``
  writes (through the default project they would never read as written).
* ``observe`` sends a constant number of requests whatever the store holds:
  ``GET /1.0``, at most one ``GET /1.0/certificates/<own fingerprint>`` (HTTPS
  clients: refuse a project-restricted certificate early), at most one
  ``GET /1.0/projects/<project>``, and one ``GET /1.0/images?recursion=1``; on a
  cluster, one member list and at most two reads per member for its free image space
  (:mod:`reconciler.adapters.incus_space`).  Only ``verify_copies`` (``--verify``)
  sends a request per image (:mod:`reconciler.adapters.incus_verify`).
* ``observe`` reports the whole server config, the tool's ownership records
  included (the core reads those), and the daemon's defaults of the ``images.*``
  keys it does not list (``SERVER_DEFAULTS``).  The JSON is decoded by the pure
  :mod:`reconciler.adapters.incus_decode`.
* ``pull_image`` never rewrites an image that was in the project before: Incus
  6.0.4 does (even when the pull fails), and the adapter puts the fields back
  (:meth:`IncusStore._put_back`).  What the project held before the pull comes
  from the caller (``present``) or one ``GET /1.0/images?recursion=1``; after a
  pull that resolved to a held image, or a failed pull by fingerprint, that image
  is read again (one ``GET``); after a failed pull by alias, when the project held
  images before, the list is read.
* Error envelopes become typed errors: 404 ``NotFound``, 409 ``AlreadyExists``, 412
  ``PreconditionFailed``, 403 ``UntrustedClient``, anything else ``StoreError`` with
  the daemon's message and status.  An operation that ends in failure (an error
  envelope from ``/wait``, or ``status_code`` 400/401 with ``err``) is
  ``OperationFailed`` carrying the daemon's text.
* A mutating call returns only once the daemon has finished, and ``update_image``
  re-reads the image to check that the fields really landed.  However long an
  operation runs (a real-size image download takes minutes), it is waited for, up
  to ``operation_timeout``; Incus 6.0's "context deadline exceeded" answer to
  ``/wait`` means "still running" (handled in ``_wait_round`` only).  When the
  tool gives up on an operation (timeout, interrupt, lost connection) it asks the
  daemon to cancel it (``DELETE /1.0/operations/<id>``); a timeout raises
  ``OperationAbandoned`` saying whether the daemon confirmed that it stopped.
* Messages name the target (``StoreError(self.target, ...)``) and never carry key
  material.
* A target with several addresses (``urls:``, members of one cluster) sends its first
  request to each in turn until one answers, and uses that one for the rest of the
  command (:meth:`IncusStore._send_choosing`); only a request that never reached a
  daemon (connection, TLS or connect-timeout failure), or a ``GET`` answered 503, moves
  on.  ``passed_over`` (and the observation's) says which were skipped and why.
* Every request waits at most the store's :class:`~reconciler.timeouts.Timeouts`:
  ``connect`` to connect (and finish the TLS handshake), ``read`` for each read of the
  answer; a long poll (``/wait?timeout=N``) waits ``N + read``; the image list
  waits :data:`LIST_READS` times ``read`` (the daemon sends it only once it is
  whole, and on Incus 6.0 that takes seconds per thousand images).  A daemon that stops
  answering (stopped with SIGSTOP, hung) is given up on within those limits, and the
  message says which limit ran out, after how long, and the option that sets it.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from reconciler import jsontext
from reconciler.adapters.http import (
    DROPPED,
    AnswerRefused,
    Transport,
    connect_timed_out,
    exception_chain,
    failure_kind,
    failure_reason,
    open_transport,
    read_whole,
)
from reconciler.adapters.incus_decode import (
    SERVER_DEFAULTS,
    aliases_from_api,
    as_list,
    as_mapping,
    clustered,
    config_etag,
    config_map,
    format_time,
    free_bytes,
    host_architecture,
    image_from_api,
    images_enabled,
    images_from_api,
    images_pool,
    instances_from_api,
    kernel_cgroup,
    member_name,
    members_from_api,
    parse_time,
    profiles_from_api,
    server_fingerprint,
    server_version,
)
from reconciler.adapters.reach import accepting
from reconciler.core.inventory import patched_config
from reconciler.errors import (
    AlreadyExists,
    NoQuorum,
    NotFound,
    OperationAbandoned,
    OperationFailed,
    PreconditionFailed,
    StoreError,
    SyncFailed,
    UntrustedClient,
)
from reconciler.model.config import TargetSpec
from reconciler.model.observed import (
    ClusterMember,
    ObservedAlias,
    ObservedImage,
    Profile,
    TargetState,
    Verification,
)
from reconciler.model.plan import PullSource, Writable
from reconciler.ports import DEFAULT_OPERATION_TIMEOUT, Progress
from reconciler.redact import redact_url, without_userinfo
from reconciler.timeouts import (
    ANSWER_DEADLINE,
    CONNECT_OPTION,
    LIST_READS,
    READ_OPTION,
    Timeouts,
    seconds,
)

MAX_ANSWER_BYTES = 128 << 20
"""The most one answer of a daemon may hold.  An image list takes 0.6-2 KB per image
(5,000 small images: 2.9 MB), so this is some 60,000 images or more."""
STALLED = "is incusd stopped or overloaded?"
LONG_LIST = ("the daemon sends its image list only once it is whole: a store of thousands "
             "of images can take longer; or is incusd stopped or overloaded?")
"""Why an image list timed out."""
WAIT_SECONDS = 2
"""``/wait?timeout=`` per round: finished operations vanish 5 s after they end."""
OPERATION_TIMEOUT = DEFAULT_OPERATION_TIMEOUT
CANCEL_GRACE = 15.0
"""After cancelling an operation, how long to wait to learn how it ended."""
CANCEL_READ_TIMEOUT = 10.0
DEADLINE_EXCEEDED = "context deadline exceeded"
"""Incus 6.0's ``/wait`` answer (error_code 500) when its timeout passes first."""
UPLOAD_PROGRESS_STEP = 8 * 1024 * 1024

UNTRUSTED = ("the daemon does not trust this client (auth: untrusted); "
             "add its certificate with `incus config trust add`")
RESTRICTED = ("this client's certificate is restricted to projects {projects}; the tool keeps "
              "its ownership record in the daemon's server config and needs a certificate "
              "trusted without a project restriction")

NO_QUORUM = ("the cluster cannot list its members ({detail}): it has no quorum or is "
             "failing; nothing was written to it")
NO_MAJORITY = ("the cluster has no quorum: {count} of {total} members do not accept "
               "connections ({which}); nothing was written to it")
SYNC_FAILED = "Failed syncing image between servers"
"""How Incus words an import that could not copy the image to the other members."""
REACH_TIMEOUT = 2.0
"""Seconds each member's address has to accept a TCP connection (all tried at once)."""

_ERRORS: dict[int, type[StoreError]] = {
    403: UntrustedClient, 404: NotFound, 409: AlreadyExists, 412: PreconditionFailed,
}


def default_socket_path() -> str:
    """The local daemon's socket, found as the incus client finds it."""
    if os.environ.get("INCUS_SOCKET"):
        return os.environ["INCUS_SOCKET"]
    if os.environ.get("INCUS_DIR"):
        return os.path.join(os.environ["INCUS_DIR"], "unix.socket")
    return "/var/lib/incus/unix.socket"


def connect(target: TargetSpec, timeouts: Timeouts | None = None, *,
            operation_timeout: float = OPERATION_TIMEOUT) -> IncusStore:
    """An :class:`IncusStore` for ``target``; nothing is sent until the first call.

    ``unix://`` without a path means the local socket (:func:`default_socket_path`).
    ``timeouts`` default to 10 s to connect and 30 s per read.  A target with
    several addresses (``urls:``) gets one transport per address, the first in
    use and the others to fall back to (:meth:`IncusStore._send_choosing`).
    """
    transports: list[Transport] = []
    try:
        for address in target.addresses:
            transports.append(_transport(target, address))
    except BaseException:
        for transport in transports:
            transport.close()
        raise
    return IncusStore(target, transports[0], timeouts, operation_timeout=operation_timeout,
                      alternates=transports[1:])


def _transport(target: TargetSpec, url: str) -> Transport:
    if url.rstrip("/") in ("unix:", "unix:/", "unix://"):
        url = "unix://" + default_socket_path()
    try:
        return open_transport(url, client_cert=target.client_cert,
                              client_key=target.client_key, server_cert=target.server_cert)
    except (ValueError, OSError) as exc:
        raise StoreError(target.name, f"cannot use {redact_url(url)}: {exc}") from exc


@dataclass(frozen=True)
class _Request:
    """One request as :meth:`IncusStore._send` sends it (possibly to several addresses)."""

    method: str
    path: str
    query: Mapping[str, str]
    json: Any
    data: Any
    headers: dict[str, str]
    read: float


def _reason(resp: requests.Response) -> str:
    """The daemon's error text of an answer, else the HTTP reason."""
    try:
        body = jsontext.loads(resp.content)
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    return str(error or resp.reason or resp.status_code)


def _alias_path(name: str) -> str:
    # Names may contain '/': the route is {name...}, so slashes stay unescaped.
    return "/1.0/images/aliases/" + quote(name, safe="/")


def _image_path(fingerprint: str) -> str:
    return "/1.0/images/" + quote(fingerprint, safe="")


def _tls_detail(exc: BaseException) -> str:
    match = re.search(r"CERTIFICATE_VERIFY_FAILED\] ([^(]*?)\s*\(_ssl", str(exc))
    return match.group(1) if match else "TLS handshake failed"


class IncusStore:
    """One target: an Incus daemon reached through ``transport``, scoped to one project.

    ``session`` is exposed so callers (tests) can add ``requests`` hooks, e.g. to
    count requests.  Use as a context manager or call :meth:`close`.
    ``operation_timeout`` bounds the wait for any one daemon operation, in seconds
    of ``clock``.
    """

    def __init__(
        self, spec: TargetSpec, transport: Transport, timeouts: Timeouts | None = None, *,
        operation_timeout: float = OPERATION_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        alternates: Sequence[Transport] = (),
    ) -> None:
        self.spec = spec
        self.timeouts = timeouts or Timeouts()
        self.operation_timeout = operation_timeout
        self.clock = clock
        self.target = spec.name
        self.project = spec.project
        self.transport = transport
        self.session = transport.session
        self._all = (transport, *alternates)
        self._choosing: threading.Lock | None = threading.Lock() if alternates else None
        """Held while the first answering address is picked; None once it is (or for
        a target with one address)."""
        self.passed_over: dict[str, str] = {}
        """The addresses tried before the one in use, each with why it was not used."""
        self._seen_config: tuple[str, dict[str, str]] | None = None
        """The last server config read or written, with its ETag (see
        :meth:`patch_server_config`)."""
        self._computing_etags = True
        """False once the daemon showed an ETag that is not :func:`config_etag` of its
        config: its ETags are made otherwise, so none is computed."""

    def __enter__(self) -> IncusStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for transport in self._all:
            transport.close()

    def abandon(self) -> None:
        """Cut the reads under way (:meth:`Transport.abandon`): Incus holds every config
        write while it lists images, so a lease could not be released before an abandoned
        list of thousands of images ended; a list whose client went away ends.  A write
        under way (a lease's renewal) is left to finish."""
        for transport in self._all:
            transport.abandon()

    # -- transport and envelopes -------------------------------------------------------

    def _send(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None,
        json: Any = None, data: Any = None, headers: Mapping[str, str] | None = None,
        read_timeout: float | None = None, project: str | None = None,
    ) -> requests.Response:
        """Send one request; ``read_timeout`` (default: the store's) bounds each read."""
        query = {"project": project or self.project, **(params or {})}
        read = self.timeouts.read if read_timeout is None else read_timeout
        request = _Request(method, path, query, json, data, dict(headers or {}), read)
        choosing = self._choosing
        if choosing is not None:
            with choosing:
                if self._choosing is not None:
                    return self._send_choosing(request)
        try:
            return self._request(request)
        except requests.exceptions.RequestException as exc:
            raise StoreError(self.target, self._failure_message(method, path, exc, read)) \
                from exc

    def _request(self, r: _Request) -> requests.Response:
        """One request, its answer read whole within :data:`MAX_ANSWER_BYTES` and
        :data:`~reconciler.timeouts.ANSWER_DEADLINE` (``http.read_whole``)."""
        resp = self.session.request(
            r.method, self.transport.base + r.path, params=r.query, json=r.json, data=r.data,
            headers=r.headers, timeout=(self.timeouts.connect, r.read), stream=True)
        try:
            read_whole(resp, limit=MAX_ANSWER_BYTES, deadline=ANSWER_DEADLINE)
        finally:
            resp.close()
        return resp

    def _send_choosing(self, r: _Request) -> requests.Response:
        """The first request of a target with several addresses: each is tried in turn
        until one answers, and that one is used from then on.

        An address does not answer when the connection or the TLS handshake fails or
        times out (the request never reached a daemon, so sending it again elsewhere is
        safe), or when a ``GET`` is answered 503 (that member cannot serve).  Any other
        failure is the target's error as with one address.  When none answers, one
        error lists each address with why.
        """
        for transport in self._all:
            self._use(transport)
            try:
                resp = self._request(r)
            except requests.exceptions.RequestException as exc:
                why = self._unanswered(exc, r.method)
                if why is None:
                    raise StoreError(self.target, self._failure_message(
                        r.method, r.path, exc, r.read)) from exc
                self.passed_over[transport.display] = why
                continue
            if resp.status_code == 503 and r.method == "GET":
                self.passed_over[transport.display] = f"answered 503 ({_reason(resp)})"
                continue
            self._choosing = None
            return resp
        tried = "; ".join(f"{url}: {why}" for url, why in self.passed_over.items())
        raise StoreError(self.target, f"none of its addresses answered ({tried})")

    def _use(self, transport: Transport) -> None:
        self.transport = transport
        self.session = transport.session

    def _unanswered(self, exc: BaseException, method: str) -> str | None:
        """Why an address did not answer, or None when the request may have reached it
        (a ``GET`` whose connection was dropped may be sent again elsewhere)."""
        kind = failure_kind(exc)
        if kind == "connect":
            return failure_reason(exc)
        if kind == "dropped" and method == "GET":
            return DROPPED
        if kind == "connect_timeout" or kind == "handshake_timeout":
            what = "the TLS handshake timed out" if kind == "handshake_timeout" else "timed out"
            return f"{what} after {seconds(self.timeouts.connect)} ({CONNECT_OPTION})"
        if kind == "tls":
            pinned = "not the pinned server_cert: " if self.transport.pinned else ""
            return f"TLS verification failed ({pinned}{_tls_detail(exc)})"
        return None

    def _failure_message(self, method: str, path: str, exc: BaseException, read: float) -> str:
        """The words for a request that got no answer (see adapters.http.failure_kind)."""
        kind = failure_kind(exc)
        if kind == "connect_timeout" or kind == "handshake_timeout":
            return connect_timed_out(kind, self.transport.display, self.timeouts.connect,
                                     STALLED)
        if kind == "read_timeout":
            return self._read_timeout_message(method, path, read)
        if kind == "tls":
            return self._tls_message(exc)
        if kind == "connect":
            return self._connect_message(exc)
        if kind == "dropped":
            return (f"{method} {path} to {self.transport.display}: {DROPPED} "
                    "(did incusd stop or restart?)")
        if isinstance(exc, AnswerRefused):
            return f"{method} {path}: refusing the answer of {self.transport.display}: {exc.why}"
        return f"{method} {path}: {exc}"

    def _read_timeout_message(self, method: str, path: str, read: float) -> str:
        where = self.transport.display
        option = READ_OPTION
        listing = (method, path) == ("GET", "/1.0/images")
        if listing:
            option += f" {seconds(self.timeouts.read)} x {LIST_READS} for the image list"
        elif read != self.timeouts.read:
            option += (f" {seconds(self.timeouts.read)}, plus the "
                       f"{seconds(read - self.timeouts.read)} the daemon was asked to wait")
        why = LONG_LIST if listing else STALLED
        return f"timed out after {seconds(read)} waiting for {method} {path} from {where} " \
               f"({option}; {why})"

    def _connect_message(self, exc: BaseException) -> str:
        where = self.transport.display
        path = self.transport.socket_path
        if path is not None:
            if not os.path.exists(path):
                why = "no such socket (is incusd running?)"
            elif any(isinstance(e, BlockingIOError) for e in exception_chain(exc)):
                why = f"the daemon accepts no more connections ({STALLED})"
            elif "ermission denied" in str(exc):
                why = "permission denied (run as root or as a member of incus-admin)"
            else:
                why = "connection refused (is incusd running?)"
            return f"cannot connect to {where}: {why}"
        reason = "connection refused" if "refused" in str(exc) else "no answer"
        return f"cannot connect to {where}: {reason} (is incusd listening there?)"

    def _tls_message(self, exc: BaseException) -> str:
        where = self.transport.display
        detail = _tls_detail(exc)
        if self.transport.pinned:
            return (f"TLS verification of {where} failed: the server's certificate is not the "
                    f"pinned server_cert ({detail})")
        return (f"TLS verification of {where} failed ({detail}); pin the daemon's certificate "
                "with server_cert")

    def _decode(self, resp: requests.Response, what: str) -> tuple[dict[str, Any], int, str]:
        """The envelope, and for an error envelope its code and the daemon's message."""
        try:
            body = jsontext.loads(resp.content)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise StoreError(self.target, f"{what}: HTTP {resp.status_code} from "
                             f"{self.transport.display} is not an Incus API answer",
                             status=resp.status_code)
        if body.get("type") == "error" or resp.status_code >= 400:
            code = body.get("error_code")
            if not isinstance(code, int) or isinstance(code, bool) or not 400 <= code <= 599:
                code = resp.status_code if resp.status_code >= 400 else 500
            return body, code, str(body.get("error") or resp.reason or "error")
        return body, 0, ""

    def _envelope(self, resp: requests.Response, what: str) -> dict[str, Any]:
        """The decoded envelope of a sync/async answer; error envelopes raise."""
        body, code, message = self._decode(resp, what)
        if code:
            error = _ERRORS.get(code, StoreError)
            if error is UntrustedClient:
                message += " (the tool needs a client trusted without a project restriction)"
            raise error(self.target, f"{what}: {message}", status=code)
        return body

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> dict[str, Any]:
        return self._envelope(self._send(method, path, **kwargs), what)

    def _wait(
        self, body: Mapping[str, Any], what: str, progress: Progress | None
    ) -> dict[str, Any]:
        """Wait for an async answer's operation; return its final metadata.

        Waits until the operation ends, at most ``operation_timeout`` seconds; then
        gives up (:meth:`_give_up`).  Anything else that stops the wait (an
        interrupt, a lost connection) asks the daemon to cancel the operation,
        best effort, before it propagates.
        """
        if body.get("type") != "async":
            meta = body.get("metadata")
            return dict(meta) if isinstance(meta, Mapping) else {}
        op_path = self._operation_path(body, what)
        op: Mapping[str, Any] = as_mapping(body.get("metadata"))
        deadline = self.clock() + self.operation_timeout
        last = None
        try:
            while True:
                meta = op.get("metadata") if isinstance(op.get("metadata"), Mapping) else {}
                text = meta.get("download_progress") if meta else None
                if progress is not None and text and text != last:
                    progress(str(text))
                    last = text
                final = _final(op, what, self.target)
                if final is not None:
                    return final
                left = deadline - self.clock()
                if left <= 0:
                    return self._give_up(op_path, what)
                op = self._wait_round(op_path, what, min(WAIT_SECONDS, math.ceil(left)))
        except OperationFailed as exc:
            raise _sync_failed(exc) from None
        except OperationAbandoned:
            raise
        except BaseException:
            self._cancel(op_path)
            raise

    def _operation_path(self, body: Mapping[str, Any], what: str) -> str:
        """``/1.0/operations/<id>`` of an async answer: its ``operation``, else its
        metadata's ``id``; an answer naming neither is the daemon's fault, said so."""
        try:
            path = urlsplit(str(body.get("operation") or "")).path
        except ValueError:
            path = ""
        if not _OPERATION_PATH.fullmatch(path):
            path = f"/1.0/operations/{as_mapping(body.get('metadata')).get('id')}"
        if not _OPERATION_PATH.fullmatch(path):
            raise StoreError(self.target, f"{what}: the daemon's answer names no operation "
                             "to wait for")
        return path

    def _wait_round(self, op_path: str, what: str, seconds: int) -> Mapping[str, Any]:
        """One ``/wait?timeout=seconds``: the operation, finished or not.

        Incus 6.0 answers a wait that times out on a running operation with an error
        envelope, ``error_code`` 500 "context deadline exceeded"; that means "still
        running", confirmed (and its progress read) with ``GET /1.0/operations/<id>``,
        which also tells it apart from an operation that failed with that text.
        """
        resp = self._send("GET", op_path + "/wait", params={"timeout": str(seconds)},
                          read_timeout=seconds + self.timeouts.read)
        op = self._wait_answer(resp, what)
        if op is None:
            op = self._operation(op_path, what)
        return op

    def _wait_answer(self, resp: requests.Response, what: str) -> Mapping[str, Any] | None:
        """The operation from a ``/wait`` answer, or None for "still running".

        ``/wait`` on a failed operation answers with an error envelope carrying the
        operation's error; 404 "Operation not found" means it is gone (it finished
        more than 5 s ago), which leaves its outcome unknown; 500 "context deadline
        exceeded" is the wait's own timeout (see :meth:`_wait_round`).
        """
        body, code, message = self._decode(resp, what)
        if code == 500 and message == DEADLINE_EXCEEDED:
            return None
        if code == 404 and message.lower() == "operation not found":
            raise StoreError(self.target, f"{what}: the daemon's operation vanished before "
                             "its outcome was read", status=code)
        if code == 403:
            raise UntrustedClient(self.target, f"{what}: {message}", status=code)
        if code:
            raise OperationFailed(self.target, f"{what}: {message}", status=code)
        op = body.get("metadata")
        if not isinstance(op, Mapping):
            raise StoreError(self.target, f"{what}: the operation's answer has no metadata")
        return op

    def _operation(self, op_path: str, what: str) -> Mapping[str, Any]:
        """``GET /1.0/operations/<id>``: the operation as it is now."""
        try:
            op = self._call("GET", op_path, what).get("metadata")
        except NotFound as exc:
            raise StoreError(self.target, f"{what}: the daemon's operation vanished before "
                             "its outcome was read", status=404) from exc
        if not isinstance(op, Mapping):
            raise StoreError(self.target, f"{what}: the operation's answer has no metadata")
        return op

    def _give_up(self, op_path: str, what: str) -> dict[str, Any]:
        """Cancel an operation that outlived ``operation_timeout`` and read how it ended.

        Returns the operation's metadata if it succeeded after all; otherwise raises
        ``OperationAbandoned``, ``cancelled`` telling whether the daemon confirmed
        that it ended without landing anything (Incus 6.0.4 cancels a running image
        download on ``DELETE``; it then fails with "context canceled").
        """
        asked = self._cancel(op_path)
        limit = self.clock() + CANCEL_GRACE
        stopped = False
        while not stopped and self.clock() < limit:
            try:
                final = _final(self._wait_round(op_path, what, WAIT_SECONDS), what,
                               self.target)
            except OperationFailed:
                stopped = True  # cancelled (or failed): nothing landed
            except StoreError:
                break  # vanished or unreachable: the outcome is unknown
            else:
                if final is not None:
                    return final  # it ended well after all
        if stopped:
            outcome = "the daemon cancelled it"
        elif asked:
            outcome = "the daemon did not confirm that it stopped, so it may still land"
        else:
            outcome = "the daemon did not agree to cancel it, so it may still land"
        raise OperationAbandoned(
            self.target, f"{what}: gave up after {self.operation_timeout:g}s "
            f"(--operation-timeout); {outcome}", cancelled=stopped)

    def _cancel(self, op_path: str) -> bool:
        """Ask the daemon to cancel an operation (``DELETE``), best effort; True if it agreed."""
        try:
            self._call("DELETE", op_path, "cancel", read_timeout=CANCEL_READ_TIMEOUT)
        except Exception:  # best effort: the caller reports the outcome
            return False
        return True

    # -- server -----------------------------------------------------------------------

    def _server(self) -> tuple[dict[str, Any], str]:
        resp = self._send("GET", "/1.0")
        meta = self._envelope(resp, "GET /1.0").get("metadata")
        if not isinstance(meta, dict):
            raise StoreError(self.target, f"GET /1.0: {self.transport.display} is not an Incus "
                             "daemon")
        if meta.get("auth") != "trusted":
            raise UntrustedClient(self.target, UNTRUSTED)
        return meta, resp.headers.get("ETag", "")

    def _check_unrestricted(self, info: Mapping[str, Any]) -> None:
        """Refuse a project-restricted TLS certificate (one request, its own record).

        When the daemon does not say (no record, e.g. trust through a CA), the check
        passes and a later ``PATCH /1.0`` answers 403, reported as ``UntrustedClient``.
        """
        if info.get("auth_user_method") != "tls" or not info.get("auth_user_name"):
            return
        try:
            cert = self._call("GET", "/1.0/certificates/" + str(info["auth_user_name"]),
                              "GET /1.0/certificates", project="default").get("metadata")
        except (NotFound, UntrustedClient):
            return
        if isinstance(cert, Mapping) and cert.get("restricted"):
            projects = ", ".join(str(p) for p in as_list(cert.get("projects"))) or "(none)"
            raise UntrustedClient(self.target, RESTRICTED.format(projects=f"[{projects}]"))

    def _effective_project(self) -> str:
        if self.project == "default":
            return "default"
        try:
            meta = self._call("GET", "/1.0/projects/" + quote(self.project, safe=""),
                              f"project {self.project!r}", project="default").get("metadata")
        except NotFound as exc:
            raise StoreError(self.target, f"project {self.project!r} does not exist",
                             status=404) from exc
        return self.project if images_enabled(meta) else "default"

    def get_server_config(self) -> tuple[dict[str, str], str]:
        info, etag = self._server()
        config = config_map(info.get("config"))
        self._seen(etag, config)
        return config, etag

    def _seen(self, etag: str, config: dict[str, str]) -> None:
        """Remember the server config read with its ETag (see :meth:`patch_server_config`)."""
        if etag and etag != config_etag(config):
            self._computing_etags = False
        self._seen_config = (etag, config)

    def patch_server_config(self, changes: dict[str, str], etag: str) -> str:
        """``PATCH /1.0`` with ``If-Match: etag``; the config's new ETag, or "".

        The daemon's answer carries no ETag; when ``etag`` is that of the last config
        this store read or wrote, the new one is computed from the patched config
        (:func:`~reconciler.adapters.incus_decode.config_etag`), saving a re-read.
        A daemon that once showed an ETag made otherwise gets no computed ETags.
        """
        headers = {"If-Match": etag} if etag else {}
        seen = self._seen_config
        self._call("PATCH", "/1.0", "server config", json={"config": dict(changes)},
                   headers=headers)
        if not etag or seen is None or seen[0] != etag or not self._computing_etags:
            self._seen_config = None
            return ""
        after = patched_config(seen[1], changes)
        new = config_etag(after)
        self._seen_config = (new, after)
        return new

    # -- observation ------------------------------------------------------------------

    def check(self) -> None:
        """``GET /1.0`` and, on a cluster, the member list with each member's
        connection check (``NoQuorum`` when it fails); the restricted-certificate
        check follows the observation's."""
        info, _ = self._server()
        self._members(info)
        self._check_unrestricted(info)

    def observe(self) -> TargetState:
        """The store as the daemon shows it.  ``server_config`` is the whole server
        config, the tool's ownership records (``user.*`` keys) included: reading those
        is the core's business (``reconciler.core.inventory.with_inventories``)."""
        info, etag = self._server()
        members = self._members(info)  # first: without quorum every other read hangs
        self._check_unrestricted(info)
        config = config_map(info.get("config"))
        self._seen(etag, config)
        effective = self._effective_project()
        version = server_version(info)
        return TargetState(
            target=self.target, project=self.project, effective_project=effective,
            host_architecture=host_architecture(info), server_version=version,
            server_config=config, server_defaults=dict(SERVER_DEFAULTS), config_etag=etag,
            images=self._list_images(), profiles=self._profiles(),
            instances=self._instances(),
            images_free_bytes=self._images_free(config.get("storage.images_volume", "")),
            kernel_cgroup=kernel_cgroup(version), server_fingerprint=server_fingerprint(info),
            clustered=clustered(info), members=self._member_space(members, info),
            member=member_name(info), url=self.transport.display,
            passed_over=dict(self.passed_over),
        )

    def _members(self, info: Mapping[str, Any]) -> tuple[ClusterMember, ...]:
        """A clustered target's members, one list call; () when not clustered.

        Any failure of that call (503 without quorum, a timeout, a 500) means the
        cluster cannot be trusted with a write: ``NoQuorum``.
        """
        if not clustered(info):
            return ()
        try:
            listed = self._call("GET", "/1.0/cluster/members", "cluster member list",
                                params={"recursion": "1"}, project="default").get("metadata")
        except UntrustedClient:
            raise
        except StoreError as exc:
            raise NoQuorum(self.target, NO_QUORUM.format(detail=_detail(exc))) from exc
        return self._reached(members_from_api(listed))

    def _reached(self, members: tuple[ClusterMember, ...]) -> tuple[ClusterMember, ...]:
        """``members`` with ``reachable`` set by a TCP connection to each one's url.

        For a few seconds after members die the survivors still answer and list them
        Online; a majority that does not accept connections is no quorum:
        ``NoQuorum``, as when the list itself fails.
        """
        found = accepting((m.url for m in members),
                          min(REACH_TIMEOUT, self.timeouts.connect))
        reached = tuple(m.model_copy(update={"reachable": found.get(m.url)}) for m in members)
        down = [m for m in reached if m.reachable is False]
        if reached and len(down) * 2 > len(reached):
            which = ", ".join(f"{m.name} at {m.url}" for m in down)
            raise NoQuorum(self.target, NO_MAJORITY.format(
                count=len(down), total=len(reached), which=which))
        return reached

    def _member_space(self, members: tuple[ClusterMember, ...], info: Mapping[str, Any]
                      ) -> tuple[ClusterMember, ...]:
        """Each member's free image space (:mod:`reconciler.adapters.incus_space`)."""
        from reconciler.adapters.incus_space import with_free_space

        def get(path: str, params: Mapping[str, str]) -> Any:
            try:
                return self._call("GET", path, "member free space", params=params,
                                  project="default").get("metadata")
            except StoreError:
                return None

        return with_free_space(members, contacted=member_name(info),
                               contacted_config=config_map(info.get("config")), get=get)

    def _profiles(self) -> dict[str, Profile]:
        """The project's profiles, one list call."""
        return profiles_from_api(self._call("GET", "/1.0/profiles", "profile list",
                                            params={"recursion": "1"}).get("metadata"))

    def _instances(self) -> dict[str, tuple[str, ...]]:
        """Fingerprint -> names of the project's instances created from it, one list call."""
        return instances_from_api(self._call("GET", "/1.0/instances", "instance list",
                                             params={"recursion": "1"}).get("metadata"))

    def _images_free(self, images_volume: str) -> int | None:
        """Free bytes of the image store, when it is a storage volume (else not exposed)."""
        pool = images_pool(images_volume)
        if not pool:
            return None
        try:
            res = self._call("GET", f"/1.0/storage-pools/{pool}/resources", "pool resources",
                             project="default").get("metadata")
        except StoreError:
            return None
        return free_bytes(res)

    def _get_image(self, fingerprint: str) -> tuple[ObservedImage, str]:
        resp = self._send("GET", _image_path(fingerprint))
        meta = self._envelope(resp, f"image {fingerprint}").get("metadata")
        try:
            return image_from_api(meta), resp.headers.get("ETag", "")
        except ValueError as exc:
            raise StoreError(self.target, f"image {fingerprint}: {exc} in the daemon's "
                             "answer") from None

    def get_image(self, fingerprint: str) -> ObservedImage | None:
        try:
            return self._get_image(fingerprint)[0]
        except NotFound:
            return None

    def verify_copies(self, fingerprints: Sequence[str], state: TargetState) -> Verification:
        """Export each image through each member (:mod:`reconciler.adapters.incus_verify`)."""
        from reconciler.adapters.incus_verify import verify_copies

        return verify_copies(self.spec, self.transport, self.timeouts, fingerprints, state)

    # -- images -----------------------------------------------------------------------

    def pull_image(
        self, pull: PullSource, *, certificate: str | None, writable: Writable, progress: Progress,
        present: Mapping[str, ObservedImage] | None = None,
        accepted: Callable[[], None] | None = None,
    ) -> str:
        """See :meth:`reconciler.ports.ImageStore.pull_image`.  ``present`` (what the
        caller knows the project holds) saves listing the images before the pull;
        ``accepted`` is called once the daemon answered the request with its operation."""
        key = pull.alias or pull.fingerprint
        if not key:
            raise StoreError(self.target, f"pull from {pull.server}: neither alias nor "
                             "fingerprint given")
        source: dict[str, Any] = {  # never credentials: the daemon stores and shows "server"
            "type": "image", "mode": "pull", "server": without_userinfo(pull.server),
            "protocol": pull.protocol, "image_type": pull.image_type,
            "certificate": certificate or "",
        }
        source["alias" if pull.alias else "fingerprint"] = key
        # Never "aliases": an existing alias would fail the whole operation after the
        # download; aliases are managed with their own calls.
        body = {
            "source": source, "auto_update": writable.auto_update, "public": writable.public,
            "profiles": list(writable.profiles),
            "properties": {k: v for k, v in writable.properties.items() if v is not None},
        }
        what = f"pull of {pull.server} {key}"
        before = dict(present) if present is not None else {
            img.fingerprint: img for img in self._list_images()}
        try:
            answer = self._call("POST", "/1.0/images", what, json=body)
            if accepted is not None:
                accepted()
            fingerprint = self._wait(answer, what, progress).get("fingerprint")
        except OperationFailed:
            if pull.alias:  # it may have resolved to any image the store had
                self._put_back(before, writable)
            elif pull.fingerprint in before:  # by fingerprint: only that one
                self._put_back(before, writable, only=pull.fingerprint)
            raise
        if isinstance(fingerprint, str) and fingerprint in before:
            # It resolved to an image the store had: overwritten.
            self._put_back(before, writable, only=fingerprint)
        if not isinstance(fingerprint, str) or not fingerprint:
            raise StoreError(self.target, f"{what}: the daemon reported no fingerprint")
        return fingerprint

    def _list_images(self) -> tuple[ObservedImage, ...]:
        listed = self._call("GET", "/1.0/images", "image list", params={"recursion": "1"},
                            read_timeout=self.timeouts.read * LIST_READS).get("metadata")
        try:
            return images_from_api(listed)
        except ValueError as exc:
            raise StoreError(self.target, f"image list: {exc} in the daemon's answer") from None

    def _put_back(self, before: Mapping[str, ObservedImage], sent: Writable, *,
                  only: str | None = None) -> None:
        """Undo the daemon's overwrite of images it already had (Incus 6.0.4).

        A pull that resolves to an image already in the project (by fingerprint, or
        by alias through the daemon's older index) writes the request's ``public``,
        ``auto_update``, ``profiles`` and properties onto that image, even when the
        operation then fails ("Alias already exists" when the image has aliases).
        That image may be nobody's or another owner's: every image that was there
        before the pull and now carries exactly what the request sent gets its
        previous fields back.  No request when the project held no image, nor after a
        pull that landed a fingerprint the project did not hold (nothing was
        overwritten: the overwrite hits the image the pull resolved to); after a pull
        that landed ``only``, an image it held, or a failed pull by that fingerprint,
        that one image is read, not the list (a failed pull by alias does not say
        which image it resolved to: the list is read).
        """
        if not before:
            return
        if only is None:
            now = self._list_images()
        else:
            found = self.get_image(only)
            now = (found,) if found is not None else ()
        for img in now:
            old = before.get(img.fingerprint)
            if old is None or not _upserted(old, img, sent):
                continue
            keys = set(old.properties) | set(img.properties)
            self.update_image(img.fingerprint, Writable(
                auto_update=old.auto_update, public=old.public, profiles=old.profiles,
                properties={k: old.properties.get(k) for k in sorted(keys)},
                expires_at=old.expires_at))

    def upload_image(
        self, parts: list[tuple[str, Iterator[bytes]]], *, fingerprint: str, type_: str,
        progress: Progress,
    ) -> str:
        """Upload one unified file or a split pair (metadata, rootfs), streamed.

        Each part's name is used as its file name.  An image already present with
        ``fingerprint`` is not uploaded again.
        """
        what = f"upload of image {fingerprint}"
        if len(parts) not in (1, 2):
            raise StoreError(self.target, f"{what}: expected 1 or 2 files, got {len(parts)}")
        if self.get_image(fingerprint) is not None:
            return fingerprint
        headers = {"X-Incus-fingerprint": fingerprint}
        stream: Iterator[bytes]
        if len(parts) == 1:
            headers["Content-Type"] = "application/octet-stream"
            stream = parts[0][1]
        else:
            boundary = uuid.uuid4().hex
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
            rootfs = "rootfs.img" if type_ == "virtual-machine" else "rootfs"
            named = [("metadata", *parts[0]), (rootfs, *parts[1])]
            stream = _multipart(named, boundary)
        body = _counting(stream, progress)
        try:
            answer = self._call("POST", "/1.0/images", what, data=body, headers=headers)
            landed = self._wait(answer, what, None).get("fingerprint")
        except SyncFailed:
            raise  # its record is there, on one member only: not a landed image
        except OperationFailed:
            if self.get_image(fingerprint) is not None:  # it arrived meanwhile
                return fingerprint
            raise
        if landed != fingerprint:
            raise StoreError(self.target, f"{what}: the daemon landed {landed!r} instead")
        return fingerprint

    def update_image(self, fingerprint: str, writable: Writable) -> None:
        """PUT the whole ``ImagePut`` (PATCH ignores ``expires_at`` and ``profiles``)."""
        current, etag = self._get_image(fingerprint)
        properties = dict(current.properties)
        for key, value in writable.properties.items():
            if value in (None, ""):
                properties.pop(key, None)
            else:
                properties[key] = str(value)
        body = {
            "public": writable.public, "auto_update": writable.auto_update,
            "profiles": list(writable.profiles), "properties": properties,
            "expires_at": format_time(writable.expires_at),
        }
        headers = {"If-Match": etag} if etag else {}
        self._call("PUT", _image_path(fingerprint), f"image {fingerprint}", json=body,
                   headers=headers)
        after, _ = self._get_image(fingerprint)
        wrong = _unlanded(after, writable, properties)
        if wrong:
            raise StoreError(self.target, f"image {fingerprint}: the update of "
                             f"{', '.join(wrong)} did not land (the daemon reported success)")

    def delete_image(self, fingerprint: str) -> None:
        what = f"delete of image {fingerprint}"
        self._wait(self._call("DELETE", _image_path(fingerprint), what), what, None)

    # -- aliases ----------------------------------------------------------------------

    def create_alias(self, name: str, target: str, description: str) -> None:
        self._call("POST", "/1.0/images/aliases", f"alias {name!r}",
                   json={"name": name, "target": target, "description": description})

    def move_alias(self, name: str, target: str) -> None:
        self._call("PATCH", _alias_path(name), f"alias {name!r}", json={"target": target})

    def update_alias(self, name: str, description: str) -> None:
        self._call("PATCH", _alias_path(name), f"alias {name!r}",
                   json={"description": description})

    def delete_alias(self, name: str) -> None:
        self._call("DELETE", _alias_path(name), f"alias {name!r}")

    def get_aliases(self) -> tuple[ObservedAlias, ...]:
        return aliases_from_api(self._call("GET", "/1.0/images/aliases", "alias list",
                                           params={"recursion": "1"}).get("metadata"))


def _detail(exc: StoreError) -> str:
    """An error's message without its ``target '...': `` prefix."""
    text = str(exc)
    prefix = f"target {exc.target!r}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def _sync_failed(exc: OperationFailed) -> OperationFailed:
    """``exc`` as :class:`SyncFailed` when the daemon failed to copy an imported image to
    the other cluster members (it keeps the record and files on the importing member)."""
    if isinstance(exc, SyncFailed) or SYNC_FAILED not in str(exc):
        return exc
    return SyncFailed(exc.target, f"{_detail(exc)} (the image stays on the importing member "
                      "only, without its aliases; a later run settles it once every member "
                      "is up)", status=exc.status)


_OPERATION_PATH = re.compile(r"/1\.0/operations/[A-Za-z0-9-]+")


def _final(op: Mapping[str, Any], what: str, target: str) -> dict[str, Any] | None:
    """An ended operation's metadata (success); None while it runs; failure raises."""
    code = op.get("status_code")
    if code == 200:
        meta = op.get("metadata")
        return dict(meta) if isinstance(meta, Mapping) else {}
    if isinstance(code, int) and code >= 400:
        raise OperationFailed(target, f"{what}: {op.get('err') or op.get('status') or 'failed'}",
                              status=code)
    return None


def _unlanded(image: ObservedImage, writable: Writable, properties: Mapping[str, str]) -> list[str]:
    """The writable fields whose stored value differs from what was written."""
    wrong = []
    if image.public != writable.public:
        wrong.append("public")
    if image.auto_update != writable.auto_update:
        wrong.append("auto_update")
    if sorted(image.profiles) != sorted(writable.profiles):
        wrong.append("profiles")
    if image.properties != dict(properties):
        wrong.append("properties")
    want = parse_time(format_time(writable.expires_at), expiry=True)
    got = image.expires_at
    if (want is None) != (got is None) or (
        want is not None and got is not None and abs(want - got) > timedelta(seconds=1)
    ):
        wrong.append("expires_at")
    return wrong


def _writable_fields(img: ObservedImage) -> tuple[object, ...]:
    return (img.auto_update, img.public, tuple(img.profiles), img.properties)


def _upserted(before: ObservedImage, after: ObservedImage, sent: Writable) -> bool:
    """Whether ``after`` differs from ``before`` by exactly a pull request's fields."""
    if _writable_fields(before) == _writable_fields(after):
        return False
    props = {**before.properties,
             **{k: v for k, v in sent.properties.items() if v not in (None, "")}}
    return (after.auto_update == sent.auto_update and after.public == sent.public
            and tuple(after.profiles) == tuple(sent.profiles) and after.properties == props)


def _multipart(parts: list[tuple[str, str, Iterator[bytes]]], boundary: str) -> Iterator[bytes]:
    """A ``multipart/form-data`` body, streamed part by part (form name, file name, data)."""
    for form, filename, chunks in parts:
        safe = filename.replace('"', "").replace("\r", "").replace("\n", "") or form
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{form}\"; "
               f"filename=\"{safe}\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
        yield from chunks
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def _counting(chunks: Iterator[bytes], progress: Progress) -> Iterator[bytes]:
    """Pass ``chunks`` through, reporting the bytes sent every few MB."""
    sent = 0
    reported = 0
    for chunk in chunks:
        if not chunk:
            continue
        yield chunk
        sent += len(chunk)
        if sent - reported >= UPLOAD_PROGRESS_STEP:
            progress(f"upload: {sent / 1e6:.1f}MB")
            reported = sent
    progress(f"upload: {sent / 1e6:.1f}MB done")
