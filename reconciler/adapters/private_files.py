"""Key material and certificates for libraries that only take file paths (``ssl``, ``requests``).

Invariants:

* On Linux every file is an anonymous memory file (``memfd_create``) reached as
  ``/proc/self/fd/N``: nothing is ever written to a file system, and the kernel
  frees it when the last descriptor closes, which includes the process ending in
  any way (SIGKILL too).  A killed run leaves no key on disk.
* The descriptors are close-on-exec (child processes never inherit them) and the
  memory files are mode 0600, like the files of the fallback.
* Where that is not available (no ``memfd_create`` or no ``/proc``), the files go
  to a private temporary directory (0700, files 0600) that :meth:`PrivateFiles.close`
  removes, as does a finalizer if ``close`` is forgotten; only there can a killed
  run leave a file behind.
* :meth:`PrivateFiles.close` is idempotent; the paths are invalid after it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from contextlib import suppress
from typing import Any


def memfd_supported() -> bool:
    """Whether anonymous memory files can be created and reached by path here."""
    if not hasattr(os, "memfd_create"):
        return False
    try:
        fd = os.memfd_create("incus-images-probe", os.MFD_CLOEXEC)
    except OSError:
        return False
    try:
        return os.path.exists(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


class PrivateFiles:
    """Named private files holding PEM texts, each reachable by a path until :meth:`close`.

    ``prefix`` names the temporary directory of the fallback (``incus-images-tls-``).
    """

    def __init__(self, prefix: str, *, memory: bool | None = None) -> None:
        self._prefix = prefix
        self._memory = memfd_supported() if memory is None else memory
        self._fds: list[int] = []
        self._dir: str | None = None
        self._finalizer: weakref.finalize[Any, Any] = weakref.finalize(
            self, _release, self._fds, None)

    @property
    def in_memory(self) -> bool:
        """True when the files live in memory only (never on disk)."""
        return self._memory

    def add(self, name: str, text: str) -> str:
        """Store ``text`` as the file ``name``; return the path to give to a library."""
        data = text.encode()
        if self._memory:
            fd = os.memfd_create(f"incus-images-{name}", os.MFD_CLOEXEC)
            self._fds.append(fd)
            os.fchmod(fd, 0o600)
            _write_all(fd, data)
            return f"/proc/self/fd/{fd}"
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix=self._prefix)  # mode 0700
            self._finalizer.detach()
            self._finalizer = weakref.finalize(self, _release, self._fds, self._dir)
        path = os.path.join(self._dir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        return path

    def close(self) -> None:
        """Forget every file (close the memory files, or remove the directory)."""
        self._finalizer()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _release(fds: list[int], directory: str | None) -> None:
    while fds:
        with suppress(OSError):
            os.close(fds.pop())
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)
