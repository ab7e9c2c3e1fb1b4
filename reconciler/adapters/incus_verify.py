"""``--verify`` over the Incus REST API: every image exported through every member, reading
only the status line of each answer.

Incus 6.0 keeps one image record for the whole cluster and has no field saying which
members hold the files; a member whose record claims a copy it lacks answers an export
with 404 at once (``open .../images/<fp>: no such file or directory``).

Invariants:

* One ``GET /1.0/images/<fp>/export?project=<project>`` per image and member, sent
  with ``stream=True``: the body of a 200 is never read (the answer is closed at once);
  an error answer's body, a small JSON envelope, is read up to :data:`ERROR_BODY_LIMIT`
  bytes for the daemon's message.
* The contacted member is checked over the store's own connection; every other member
  at its ``url``, with the target's client certificate and key, and the target's
  pinned ``server_cert`` (the members of a cluster share one certificate) or, without
  one, the system CAs, as the target is reached.  A target without a client
  certificate (a unix socket) can reach no other member: those are ``unchecked``.
* A member that is not healthy (not Online, or it refused a connection at
  observation) is not contacted.  A member whose request fails (no connection, a
  timeout, TLS) is given up after that first failure, so a dead member costs one
  timeout, not one per image; members are checked concurrently (at most
  :data:`MAX_WORKERS` at once), each request bounded by the store's timeouts.
* 200: the copy is readable.  404 for an image whose record is gone (``not found``):
  it was deleted meanwhile, nothing to report.  Any other 404: a broken copy on that
  member.  Any other answer: the member is ``unchecked``, with the status and message.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from reconciler import jsontext
from reconciler.adapters.http import Transport, failure_reason, open_transport
from reconciler.model.config import TargetSpec
from reconciler.model.observed import BrokenCopy, ClusterMember, TargetState, Verification
from reconciler.timeouts import Timeouts

ERROR_BODY_LIMIT = 8192
"""How much of an error answer is read for the daemon's message."""
MAX_WORKERS = 4
"""Members checked at once."""
NO_CREDENTIALS = "no client certificate to reach it (the target is reached without one)"


@dataclass(frozen=True)
class MemberCheck:
    """One member's outcome: its broken copies, or why it could not be checked."""

    member: str
    broken: tuple[BrokenCopy, ...] = ()
    unchecked: str | None = None


@dataclass(frozen=True, eq=False)
class Route:
    """How to reach one member: over the store's transport, or at ``url`` (None: not at all,
    ``reason`` says why)."""

    member: str
    transport: Transport | None = None
    url: str | None = None
    reason: str = ""


def verify_copies(spec: TargetSpec, transport: Transport, timeouts: Timeouts,
                  fingerprints: Sequence[str], state: TargetState) -> Verification:
    """Check every fingerprint through every member of ``state`` (see the module's
    invariants); ``transport`` is the store's own, to the contacted member."""
    fps = tuple(sorted(set(fingerprints)))
    routes = routes_of(spec, transport, state)
    reachable = [r for r in routes if r.transport is not None or r.url is not None]
    checks = [MemberCheck(r.member, unchecked=r.reason) for r in routes
              if r.transport is None and r.url is None]
    if not fps:
        checks += [MemberCheck(r.member) for r in reachable]
    elif reachable:
        with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(reachable))) as pool:
            futures = [pool.submit(_check_route, spec, r, timeouts, fps, state.project)
                       for r in reachable]
            checks += [f.result() for f in futures]
    return Verification(
        fingerprints=fps,
        checked=tuple(sorted(c.member for c in checks if c.unchecked is None)),
        unchecked={c.member: c.unchecked for c in sorted(checks, key=lambda c: c.member)
                   if c.unchecked is not None},
        broken=tuple(sorted((b for c in checks for b in c.broken),
                            key=lambda b: (b.fingerprint, b.member))),
    )


def routes_of(spec: TargetSpec, transport: Transport, state: TargetState) -> list[Route]:
    """How each member is reached: the contacted one (a standalone daemon: the one,
    named "") over ``transport``, the others at their ``url`` when the target has a
    client certificate and they are healthy."""
    if not state.clustered:
        return [Route("", transport=transport)]
    routes: list[Route] = []
    for m in state.members:
        routes.append(_route(spec, transport, state, m))
    if state.member and all(m.name != state.member for m in state.members):
        routes.append(Route(state.member, transport=transport))
    return routes


def _route(spec: TargetSpec, transport: Transport, state: TargetState,
           member: ClusterMember) -> Route:
    if member.name == state.member:
        return Route(member.name, transport=transport)
    if not member.healthy:
        why = (f"it is {member.status}" if member.status != "Online"
               else "it did not accept a connection")
        return Route(member.name, reason=why)
    if spec.client_cert is None or spec.client_key is None:
        return Route(member.name, reason=NO_CREDENTIALS)
    if not member.url.startswith("https://"):
        return Route(member.name, reason=f"its url {member.url!r} is not https://")
    return Route(member.name, url=member.url)


def _check_route(spec: TargetSpec, route: Route, timeouts: Timeouts, fps: Sequence[str],
                 project: str) -> MemberCheck:
    """Check ``fps`` through one member, opening (and closing) its transport if needed."""
    if route.transport is not None:
        return check_member(route.member, route.transport, timeouts, fps, project)
    assert route.url is not None
    try:
        transport = open_transport(route.url, client_cert=spec.client_cert,
                                   client_key=spec.client_key, server_cert=spec.server_cert)
    except (ValueError, OSError) as exc:
        return MemberCheck(route.member, unchecked=f"cannot use {route.url}: {exc}")
    try:
        return check_member(route.member, transport, timeouts, fps, project)
    finally:
        transport.close()


def check_member(member: str, transport: Transport, timeouts: Timeouts, fps: Sequence[str],
                 project: str) -> MemberCheck:
    """Export each of ``fps`` through ``transport``; stop at the first request that fails."""
    broken: list[BrokenCopy] = []
    for fp in fps:
        url = f"{transport.base}/1.0/images/{quote(fp, safe='')}/export"
        try:
            resp = transport.session.get(url, params={"project": project}, stream=True,
                                         timeout=(timeouts.connect, timeouts.read))
        except requests.exceptions.RequestException as exc:
            return MemberCheck(member, unchecked=f"{transport.display}: {failure_reason(exc)}")
        with resp:
            status = resp.status_code
            message = "" if status == 200 else _message(resp)
        if status == 200 or (status == 404 and _record_gone(message, fp)):
            continue
        if status == 404:
            broken.append(BrokenCopy(fingerprint=fp, member=member, detail=message))
            continue
        return MemberCheck(member, unchecked=f"{transport.display} answered HTTP {status} "
                           f"to an export: {message}")
    return MemberCheck(member, broken=tuple(broken))


def _message(resp: requests.Response) -> str:
    """The daemon's message in an error answer (read at most ERROR_BODY_LIMIT bytes)."""
    try:
        raw = resp.raw.read(ERROR_BODY_LIMIT)
    except Exception:
        raw = b""
    try:
        body: Any = jsontext.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("error"):
        return str(body["error"])
    return resp.reason or f"HTTP {resp.status_code}"


def _record_gone(message: str, fingerprint: str) -> bool:
    """Whether a 404's message says the image record itself is gone (deleted meanwhile)."""
    return "not found" in message.lower() and fingerprint[:12] in message
