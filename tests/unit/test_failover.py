"""``urls:``: a target listing several members of one cluster uses the first that
answers, and says which.

The adapter half runs ``IncusStore`` against scripted sessions (no sockets): each
address either answers like Incus 6.0.4 (``GET /1.0``), answers 503, or fails the
way ``requests`` fails when nothing listens, a TLS check fails, or the connection
or the answer times out.  The file half checks ``urls`` in the desired-state file.
"""

from __future__ import annotations

import errno
import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from reconciler.adapters.http import Transport
from reconciler.adapters.incus import IncusStore, connect
from reconciler.desired.load import load_config
from reconciler.errors import StoreError, ValidationFailed
from reconciler.model.config import TargetSpec
from reconciler.model.observed import TargetState
from reconciler.model.plan import TargetReach
from tests.unit.test_cli import FULL, World

M1, M2, M3 = "https://m1:8443", "https://m2:8443", "https://m3:8443"
REFUSED = requests.exceptions.ConnectionError(
    ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"))
TLS = requests.exceptions.SSLError(
    "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate "
    "(_ssl.c:1006)")


@dataclass
class Member:
    """One address: ``answer`` is an HTTP status to answer with, or what to raise."""

    answer: int | BaseException = 200
    config: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    def request(self, method: str, url: str, **_: Any) -> requests.Response:
        self.log.append(f"{method} {url}")
        if isinstance(self.answer, BaseException):
            raise self.answer
        resp = requests.Response()
        resp.status_code = self.answer
        if self.answer == 200:
            body: dict[str, Any] = {"type": "sync", "status_code": 200, "metadata": {
                "auth": "trusted", "config": self.config}}
        else:
            body = {"type": "error", "error_code": self.answer,
                    "error": "Failed to begin transaction: no available cowsql leader"}
        resp._content = json.dumps(body).encode()
        resp.headers["ETag"] = "etag-" + url.split("/")[2]
        return resp

    def close(self) -> None:
        pass


def store_of(*members: tuple[str, Member]) -> IncusStore:
    transports = [Transport(session=m, base=url, display=url)  # type: ignore[arg-type]
                  for url, m in members]
    spec = TargetSpec(name="prod", url=members[0][0], urls=tuple(u for u, _ in members))
    return IncusStore(spec, transports[0], alternates=transports[1:])


def test_the_first_address_that_answers_is_used_from_then_on() -> None:
    m1, m2 = Member(REFUSED), Member(config={"k": "from m2"})
    store = store_of((M1, m1), (M2, m2))
    assert store.get_server_config() == ({"k": "from m2"}, "etag-m2:8443")
    assert store.passed_over == {M1: "connection refused"}
    store.get_server_config()
    assert len(m1.log) == 1 and len(m2.log) == 2  # chosen once, not tried again


def test_the_first_address_is_used_when_it_answers() -> None:
    m1, m2 = Member(), Member()
    store = store_of((M1, m1), (M2, m2))
    store.get_server_config()
    assert store.passed_over == {} and len(m2.log) == 0


def test_a_member_answering_503_is_passed_over() -> None:
    m1, m2 = Member(503), Member()
    store = store_of((M1, m1), (M2, m2))
    store.get_server_config()
    assert store.passed_over == {
        M1: "answered 503 (Failed to begin transaction: no available cowsql leader)"}


@pytest.mark.parametrize(("failure", "why"), [
    (TLS, "TLS verification failed (certificate verify failed: self-signed certificate)"),
    (requests.exceptions.ConnectTimeout("connect timed out"),
     "timed out after 10 s (--connect-timeout)"),
])
def test_tls_and_connect_timeouts_are_passed_over(failure: BaseException, why: str) -> None:
    store = store_of((M1, Member(failure)), (M2, Member()))
    store.get_server_config()
    assert store.passed_over == {M1: why}


def test_a_read_timeout_is_not_failed_over() -> None:
    """The request reached a daemon that did not answer in time: sending it to another
    member could run it twice; it is the target's error, as with one address."""
    m2 = Member()
    store = store_of((M1, Member(requests.exceptions.ReadTimeout("read timed out"))), (M2, m2))
    with pytest.raises(StoreError, match="timed out after"):
        store.get_server_config()
    assert m2.log == []


def test_none_answering_is_one_line_listing_each_address() -> None:
    store = store_of((M1, Member(REFUSED)), (M2, Member(503)), (M3, Member(TLS)))
    with pytest.raises(StoreError) as info:
        store.get_server_config()
    assert str(info.value) == (
        f"target 'prod': none of its addresses answered ({M1}: connection refused; "
        f"{M2}: answered 503 (Failed to begin transaction: no available cowsql leader); "
        f"{M3}: TLS verification failed (certificate verify failed: self-signed certificate))")
    assert "\n" not in str(info.value)


def test_connect_opens_one_transport_per_address_and_sends_nothing() -> None:
    store = connect(TargetSpec(name="prod", url=M1, urls=(M1, M2, M3)))
    try:
        assert [t.display for t in store._all] == [M1, M2, M3]
        assert store.transport.display == M1
    finally:
        store.close()


def test_the_note_line_says_which_address_and_why_the_others_were_not_used() -> None:
    reach = TargetReach(url=M2, passed_over={M1: "connection refused"})
    assert reach.line("prod") == (
        f"target 'prod': via {M2} ({M1} did not answer: connection refused)")
    assert TargetReach(url=M1).line("prod") == f"target 'prod': via {M1}"


# -- the desired-state file -----------------------------------------------------------------

HEAD = "version: 1\ntargets:\n"


def load(tmp_path: Path, targets: str, environ: dict[str, str] | None = None) -> Any:
    path = tmp_path / "images.yaml"
    path.write_text(HEAD + textwrap.indent(textwrap.dedent(targets), "  "), encoding="utf-8")
    return load_config(path, environ or {})


def problems(tmp_path: Path, targets: str) -> list[str]:
    with pytest.raises(ValidationFailed) as info:
        load(tmp_path, targets)
    return [f"{d.line}:{d.column}: {d.message}" for d in info.value.diagnostics]


def test_urls_are_read_in_order_with_variables_expanded(tmp_path: Path) -> None:
    config = load(tmp_path, """\
        prod:
          urls: [https://m1:8443, "${SECOND}"]
        """, {"SECOND": M2})
    target = config.targets["prod"]
    assert (target.url, target.urls, target.addresses) == (M1, (M1, M2), (M1, M2))


def test_a_target_with_url_has_one_address(tmp_path: Path) -> None:
    target = load(tmp_path, "prod:\n  url: https://m1:8443\n").targets["prod"]
    assert (target.urls, target.addresses) == ((), (M1,))


def test_url_and_urls_together_are_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, """\
        prod:
          url: https://m1:8443
          urls: [https://m2:8443]
        """) == ["5:5: targets.prod sets both url and urls: keep one (urls lists every "
                 "address to try)"]


def test_every_address_is_checked_like_url(tmp_path: Path) -> None:
    assert problems(tmp_path, """\
        prod:
          urls: [https://m1:8443, "http://m2:8443"]
        """) == ["4:29: targets.prod.urls[1] must be unix:///path/to/unix.socket or "
                 "https://host:port, not 'http://m2:8443'"]


def test_an_empty_urls_list_is_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, "prod:\n  urls: []\n")


def test_two_targets_sharing_an_address_are_one_store(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
        a:
          url: https://m2:8443
        b:
          urls: [https://m1:8443, https://M2:8443/]
        """)
    assert found == ["5:3: targets 'a' and 'b' reach one image store (the same daemon and "
                     "project 'default'): each would prune what only the other declares; "
                     "keep one of them"]


# -- what plan, apply and status say --------------------------------------------------------

P1, P2 = "unix:///run/prod1/unix.socket", "unix:///run/prod2/unix.socket"
URLS_FILE = FULL.replace("    url: unix:///run/prod/incus/unix.socket\n",
                         f"    urls: [{P1}, {P2}]\n")
NOTE = f"incus-images: note: target 'prod': via {P2} ({P1} did not answer: connection refused)\n"


@pytest.fixture
def w(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
      capsys: pytest.CaptureFixture[str]) -> World:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    world = World(root=tmp_path, capsys=capsys)
    prod = world.stores["prod"]
    observe = prod.observe

    def via_second() -> TargetState:  # as IncusStore reports a failover
        return observe().model_copy(update={"url": P2,
                                            "passed_over": {P1: "connection refused"}})

    prod.observe = via_second  # type: ignore[method-assign]
    return world


def test_plan_says_which_address_it_used(w: World) -> None:
    w.write(URLS_FILE)
    code, _, err = w.run("plan")
    assert (code, err) == (0, NOTE)
    code, out, _ = w.run("plan", "--format", "json")
    assert json.loads(out)["targets"] == {
        "prod": {"url": P2, "passed_over": {P1: "connection refused"}}}


def test_apply_says_which_address_it_used(w: World) -> None:
    w.write(URLS_FILE)
    code, _, err = w.run("apply", "--yes")
    assert code == 0 and err.startswith(NOTE)


def test_status_says_which_address_it_used(w: World) -> None:
    w.write(URLS_FILE)
    code, out, err = w.run("status", "--format", "json")
    assert (code, err) == (0, NOTE)
    doc = json.loads(out)["targets"]
    assert doc["prod"]["url"] == P2 and "url" not in doc["local"]


def test_a_plan_without_urls_targets_has_no_targets_key(w: World) -> None:
    w.write(FULL)
    code, out, err = w.run("plan", "--format", "json")
    assert (code, err) == (0, "") and "targets" not in json.loads(out)


def test_a_target_left_out_by_target_is_checked_when_it_shares_any_address() -> None:
    """``plan --target a``: ``b`` lists a's daemon among its addresses, so the two may be
    one store and ``b`` is observed for the check (see ``check_distinct_stores``)."""
    from reconciler.model.config import Config
    from reconciler.pipeline import same_daemon_targets

    config = Config(path="images.yaml", digest="0" * 64, targets={
        "a": TargetSpec(name="a", url=M2),
        "b": TargetSpec(name="b", url=M1, urls=(M1, M2)),
        "c": TargetSpec(name="c", url=M3)})
    assert same_daemon_targets(config, ["a"]) == ["b"]
    assert same_daemon_targets(config, ["b"]) == ["a"]
