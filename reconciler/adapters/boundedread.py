"""Read a small file that a user names, safely: regular files only, never more than a cap.

Invariant: :func:`read_regular` never blocks on a FIFO or device (the file is
opened with ``O_NONBLOCK`` and checked with ``fstat`` before any read) and never
reads more than ``limit + 1`` bytes, so ``/dev/zero``, ``/dev/urandom``, a FIFO
or a 50 MB file cost no more than a small one.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class FileRefused(Exception):
    """The file is not a regular file or is larger than the cap; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def size_text(count: int) -> str:
    """``1048576`` -> ``1 MiB``; ``65536`` -> ``64 KiB``; else bytes."""
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= size and count % size == 0:
            return f"{count // size} {unit}"
    return f"{count} bytes"


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of ``path``; :class:`FileRefused` unless it is a regular file of at most ``limit``.

    ``OSError`` (not found, permission denied, a directory: ``IsADirectoryError``, ...)
    propagates for the caller to word.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a file")
            raise FileRefused(f"is {kind}, not a regular file")
        if info.st_size > limit:
            raise FileRefused(f"is larger than {size_text(limit)} ({info.st_size} bytes)")
        chunks: list[bytes] = []
        total = 0
        while total <= limit:
            chunk = os.read(fd, limit + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:  # it grew while we read
            raise FileRefused(f"is larger than {size_text(limit)}")
        return b"".join(chunks)
    finally:
        os.close(fd)
