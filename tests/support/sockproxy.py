"""A counting proxy in front of a daemon's unix socket, for tests that must prove which
requests the tool sent (for example: no write at all to a cluster without quorum).

:func:`counting_proxy` listens on a new unix socket, relays every connection to the
daemon's socket byte for byte in both directions, and records the request line
(``METHOD PATH``) of every HTTP request the client sends, keep-alive included (a
request line may follow the previous request's body directly: JSON ends without a line
end).  Over a unix socket the API is plain HTTP, so the request lines are readable.
``hold`` delays the requests whose line starts with one of its keys by that many
seconds (a daemon slow to answer them).  Bounded: each relay thread ends when either
side closes or the ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import re
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

REQUEST_LINE = re.compile(rb"(GET|HEAD|POST|PUT|PATCH|DELETE) (/\S*) HTTP/1\.[01]\r\n")
"""An HTTP request line.  Not anchored on a preceding line end: on a kept-alive
connection a request follows the previous one's body (JSON ends without one)."""
WRITES = ("POST", "PUT", "PATCH", "DELETE")


@dataclass
class Proxy:
    """A running proxy: ``url`` (``unix://...``) and the request lines seen so far."""

    path: Path
    requests: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def writes(self) -> list[str]:
        """The requests that could change something (every method but GET and HEAD)."""
        return [r for r in self.requests if r.split(" ", 1)[0] in WRITES]


def _relay(src: socket.socket, dst: socket.socket, seen: list[str] | None,
           lock: threading.Lock, hold: Mapping[str, float]) -> None:
    buf = b""
    try:
        while chunk := src.recv(65536):
            if seen is not None:
                buf += chunk
                end = 0
                for m in REQUEST_LINE.finditer(buf):
                    line = f"{m.group(1).decode()} {m.group(2).decode()}"
                    with lock:
                        seen.append(line)
                    time.sleep(max((s for k, s in hold.items() if line.startswith(k)),
                                   default=0.0))
                    end = m.end()  # a line is found once: the rest is kept for the next
                buf = buf[end:][-512:]
            dst.sendall(chunk)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def counting_proxy(upstream: Path, hold: Mapping[str, float] | None = None
                   ) -> Iterator[Proxy]:
    """Proxy ``upstream`` (a daemon's ``unix.socket``) for the ``with`` block; ``hold``:
    request line prefix -> seconds to hold such a request before relaying it."""
    folder = Path(tempfile.mkdtemp(prefix="ii-px-", dir="/tmp"))
    proxy = Proxy(folder / "proxy.socket")
    lock = threading.Lock()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(proxy.path))
    server.listen(16)
    server.settimeout(0.2)
    stop = threading.Event()
    open_sockets: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            daemon = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                daemon.connect(str(upstream))
            except OSError:
                client.close()
                daemon.close()
                continue
            open_sockets.extend((client, daemon))
            for args in ((client, daemon, proxy.requests), (daemon, client, None)):
                threading.Thread(target=_relay, args=(*args, lock, hold or {}),
                                 daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        stop.set()
        thread.join(5)
        server.close()
        for s in open_sockets:
            with contextlib.suppress(OSError):
                s.close()
        proxy.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            folder.rmdir()
