"""Network timeouts: the CLI options, their wiring into the adapters, and the messages.

* ``--connect-timeout``/``--read-timeout`` are accepted before and after the command
  and reach the adapters as :func:`reconciler.timeouts.current` (fake services,
  given to the CLI, record what they saw); bad values are usage errors.
* :class:`IncusStore` sends every request with the store's (connect, read) pair, a
  long poll with ``N + read``, and words each kind of timeout naming the option.
  Requests go to an in-memory ``requests`` adapter: nothing is contacted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from requests.adapters import BaseAdapter
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.exceptions import MaxRetryError, NewConnectionError, ReadTimeoutError

from reconciler import timeouts
from reconciler.adapters.http import UNIX_BASE, Transport, timeout_kind
from reconciler.adapters.incus import IncusStore
from reconciler.cli import Globals, cli
from reconciler.errors import StoreError
from reconciler.model.config import TargetSpec
from reconciler.model.plan import PullSource, Writable
from reconciler.ports import ImageStore, RemoteReader
from reconciler.services import Services, system_services
from reconciler.timeouts import Timeouts
from tests.support.builders import NOW
from tests.support.fakes import FakeReader, FakeStore

# -- the CLI options ---------------------------------------------------------------------------


@dataclass
class Seen:
    """The timeouts current when a command opens its reader and connects its store."""

    reader: list[Timeouts] = field(default_factory=list)
    connect: list[Timeouts] = field(default_factory=list)

    def invoke(self, *args: str) -> tuple[int, str]:
        """Run the CLI with services that record the timeouts they were built with."""
        store = FakeStore("local")

        def connect(target: TargetSpec, *, operation_timeout: float | None = None
                    ) -> AbstractContextManager[ImageStore]:
            self.connect.append(timeouts.current())
            return nullcontext(store)

        def reader() -> AbstractContextManager[RemoteReader]:
            self.reader.append(timeouts.current())
            return nullcontext(FakeReader({}))

        services = Services(connect=connect, reader=reader, clock=lambda: NOW,
                            environ={"INCUS_SOCKET": "/run/test/unix.socket"}, stdin=None)
        result = CliRunner().invoke(cli, list(args), obj=Globals(services=services))
        return result.exit_code, result.output


@pytest.fixture
def seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Seen:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "images.yaml").write_text("version: 1\nimages: []\n")
    return Seen()


@pytest.mark.parametrize(("args", "want"), [
    ((), Timeouts(10, 30)),
    (("plan", "--read-timeout", "7"), Timeouts(10, 7)),
    (("plan", "--connect-timeout", "2.5", "--read-timeout", "4"), Timeouts(2.5, 4)),
    (("--read-timeout", "5", "--connect-timeout", "3"), Timeouts(3, 5)),
    (("--read-timeout", "5", "plan", "--connect-timeout", "3"), Timeouts(3, 5)),
    (("--read-timeout", "5", "plan", "--read-timeout", "9"), Timeouts(10, 9)),
])
def test_the_options_reach_the_adapters(seen: Seen, args: tuple[str, ...],
                                        want: Timeouts) -> None:
    argv = list(args) if "plan" in args else [*args, "plan"]
    code, output = seen.invoke(*argv)
    assert code == 0, output
    assert (seen.reader, seen.connect) == ([want], [want])
    assert timeouts.current() == Timeouts()  # only for the run


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_a_bad_timeout_is_a_usage_error(seen: Seen, value: str) -> None:
    code, output = seen.invoke("plan", "--read-timeout", value)
    assert code == 1, output
    assert "--read-timeout" in output
    assert (seen.reader, seen.connect) == ([], [])


def test_help_teaches_the_options() -> None:
    for args in (["--help"], ["plan", "--help"], ["apply", "--help"], ["lock", "--help"],
                 ["diff", "--help"], ["status", "--help"]):
        text = CliRunner().invoke(cli, args).output
        assert "--connect-timeout SECONDS" in text and "--read-timeout SECONDS" in text, args


def test_the_system_services_build_adapters_with_the_current_timeouts() -> None:
    from reconciler.adapters.remotes.reader import HttpRemoteReader

    real = system_services()
    with timeouts.using(Timeouts(connect=1.5, read=4)):
        reader = real.reader()
        store = real.connect(TargetSpec(name="local", url="unix:///nowhere"))
    try:
        assert isinstance(reader, HttpRemoteReader)
        assert reader._timeout == (1.5, 4)
        assert isinstance(store, IncusStore) and store.timeouts == Timeouts(1.5, 4)
    finally:
        reader.close()
        store.close()


# -- IncusStore: what it sends, and how it words a timeout --------------------------------------

Reply = Callable[[requests.PreparedRequest], requests.Response | BaseException]


class Canned(BaseAdapter):
    """Answers from ``reply``; records (method, path, timeout) of every request."""

    def __init__(self, reply: Reply) -> None:
        super().__init__()
        self.reply = reply
        self.sent: list[tuple[str, str, Any]] = []

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: Any = None, verify: Any = True, cert: Any = None,
             proxies: Mapping[str, str] | None = None) -> requests.Response:
        path = (request.path_url or "").split("?")[0]
        self.sent.append((request.method or "", path, timeout))
        answer = self.reply(request)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def close(self) -> None:
        pass


def envelope(body: dict[str, Any], status: int = 200) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    return response


LIMITS = Timeouts(connect=3, read=7)


def store_with(reply: Reply, limits: Timeouts = LIMITS) -> tuple[IncusStore, Canned]:
    session = requests.Session()
    adapter = Canned(reply)
    session.mount(UNIX_BASE + "/", adapter)
    transport = Transport(session, UNIX_BASE, "unix:///run/incus/unix.socket",
                          socket_path="/run/incus/unix.socket")
    return IncusStore(TargetSpec(name="local", url=transport.display), transport, limits), adapter


def test_every_request_carries_the_timeouts_and_a_long_poll_gets_its_wait_on_top() -> None:
    op = {"id": "op1", "status_code": 200, "metadata": {}}

    def reply(request: requests.PreparedRequest) -> requests.Response:
        if request.method == "DELETE":
            return envelope({"type": "async", "operation": "/1.0/operations/op1",
                             "metadata": {**op, "status_code": 103}}, 202)
        return envelope({"type": "sync", "metadata": op})

    store, adapter = store_with(reply)
    store.delete_image("f" * 64)
    assert adapter.sent == [("DELETE", "/1.0/images/" + "f" * 64, (3, 7)),
                            ("GET", "/1.0/operations/op1/wait", (3, 2 + 7))]


def _pool() -> HTTPConnectionPool:
    return HTTPConnectionPool("localhost")


def _handshake_timeout() -> requests.exceptions.ReadTimeout:
    """What urllib3 raises when the TLS handshake stalls: a read timeout caused by it."""
    inner = ReadTimeoutError(_pool(), "/1.0", "Read timed out. (read timeout=3)")
    inner.__cause__ = TimeoutError("_ssl.c:999: The handshake operation timed out")
    return requests.exceptions.ReadTimeout(inner)


@pytest.mark.parametrize(("error", "message"), [
    (requests.exceptions.ReadTimeout(ReadTimeoutError(_pool(), "/1.0", "Read timed out.")),
     "target 'local': timed out after 7 s waiting for GET /1.0 from "
     "unix:///run/incus/unix.socket (--read-timeout; is incusd stopped or overloaded?)"),
    # a stall in the middle of the body surfaces as a ConnectionError
    (requests.exceptions.ConnectionError(ReadTimeoutError(_pool(), "/1.0", "Read timed out.")),
     "target 'local': timed out after 7 s waiting for GET /1.0 from "
     "unix:///run/incus/unix.socket (--read-timeout; is incusd stopped or overloaded?)"),
    (requests.exceptions.ConnectTimeout("connect timed out"),
     "target 'local': cannot connect to unix:///run/incus/unix.socket: timed out after 3 s "
     "(--connect-timeout; is incusd stopped or overloaded?)"),
    (_handshake_timeout(),
     "target 'local': cannot connect to unix:///run/incus/unix.socket: the TLS handshake "
     "timed out after 3 s (--connect-timeout; is incusd stopped or overloaded?)"),
])
def test_each_kind_of_timeout_is_named_with_its_option(error: BaseException,
                                                       message: str) -> None:
    store, _ = store_with(lambda _r: error)
    with pytest.raises(StoreError) as caught:
        store.get_server_config()
    assert str(caught.value) == message


def test_an_image_list_waits_ten_read_timeouts_and_says_a_large_store_may_need_more() -> None:
    """The daemon sends its image list only once it is whole (17-20 s for 4,000 images
    here): the list waits 10 x --read-timeout, every other request one."""
    store, adapter = store_with(lambda _r: requests.exceptions.ReadTimeout("Read timed out."))
    pull = PullSource(remote="r", server="https://images.example", protocol="simplestreams",
                      alias="debian/12")
    with pytest.raises(StoreError) as caught:  # no ``present``: the pull lists the images
        store.pull_image(pull, certificate=None,
                         writable=Writable(auto_update=False, public=False, profiles=(),
                                           properties={}),
                         progress=lambda _text: None)
    assert str(caught.value) == (
        "target 'local': timed out after 70 s waiting for GET /1.0/images from "
        "unix:///run/incus/unix.socket (--read-timeout 7 s x 10 for the image list; the "
        "daemon sends its image list only once it is whole: a store of thousands of images "
        "can take longer; or is incusd stopped or overloaded?)")
    assert adapter.sent == [("GET", "/1.0/images", (3, 70))]


def test_a_long_poll_timeout_says_the_wait_was_added() -> None:
    def reply(request: requests.PreparedRequest) -> requests.Response | BaseException:
        if request.method == "DELETE":
            return envelope({"type": "async", "operation": "/1.0/operations/op1",
                             "metadata": {"id": "op1", "status_code": 103}}, 202)
        return requests.exceptions.ReadTimeout("Read timed out.")

    store, _ = store_with(reply)
    with pytest.raises(StoreError) as caught:
        store.delete_image("f" * 64)
    assert str(caught.value) == (
        "target 'local': timed out after 9 s waiting for GET /1.0/operations/op1/wait from "
        "unix:///run/incus/unix.socket (--read-timeout 7 s, plus the 2 s the daemon was asked "
        "to wait; is incusd stopped or overloaded?)")


def test_a_refused_connection_is_not_a_timeout() -> None:
    refused = requests.exceptions.ConnectionError(MaxRetryError(
        _pool(), "/1.0", NewConnectionError(_pool(), "connection refused")))
    assert timeout_kind(refused) is None
    store, _ = store_with(lambda _r: refused)
    with pytest.raises(StoreError) as caught:
        store.get_server_config()
    assert "cannot connect to unix:///run/incus/unix.socket: no such socket" in str(caught.value)


def test_timeouts_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Timeouts(connect=0)
