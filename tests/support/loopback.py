"""A listening socket served from a background thread, one thread per connection: the
scripted daemons and servers of unit tests (unix sockets and 127.0.0.1 only).

Bounded: the accept loop checks for the end every 0.1 s; :meth:`Serving.close` ends it
and closes the listening socket (connection threads end with their peer).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable


class Serving:
    """``server`` (bound, not yet listening) accepting connections, each handed to
    ``handle`` in a thread of its own; ``connections`` counts them."""

    def __init__(self, server: socket.socket, handle: Callable[[socket.socket], None]) -> None:
        self.connections = 0
        self._server = server
        self._handle = handle
        server.listen(8)
        server.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_each, daemon=True)
        self._thread.start()

    def _accept_each(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._server.close()
