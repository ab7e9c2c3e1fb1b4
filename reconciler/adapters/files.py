"""Write a file atomically: the one way this tool replaces a file on disk.

Invariants:

* The temporary file is created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` under a
  random name in the destination's directory, so a file or symlink planted at a
  predictable name (a malicious checkout's ``.images.lock.yaml.tmp``) is never
  opened, followed or overwritten; a clash with an existing name only makes us
  try another name.
* The file gets exactly ``mode`` when one is given (set on the open descriptor,
  so the umask cannot widen or narrow it), else ``0o666`` less the umask, as a
  plain ``open()`` would give it; its bytes are fsynced, then it is renamed over the
  destination (``rename(2)``: readers see the old file or the new one, never a
  mix), and the directory is fsynced so the rename survives a crash.
* On any failure the temporary file is removed and the destination is untouched.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

_ATTEMPTS = 16


def _create_exclusive(directory: Path, name: str, mode: int) -> tuple[int, Path]:
    """A new file ``.<name>.<random>.tmp`` in ``directory``, opened for writing."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) \
        | getattr(os, "O_CLOEXEC", 0)
    for _ in range(_ATTEMPTS):
        tmp = directory / f".{name}.{secrets.token_hex(8)}.tmp"
        try:
            return os.open(tmp, flags, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file beside {name} in {directory}")


def write_atomic(path: Path, data: bytes, *, mode: int | None) -> None:
    """Replace ``path`` with ``data`` atomically; the file ends with permissions ``mode``
    (None: what the umask allows, as for any new file).

    Raises ``OSError`` (the destination untouched) when any step fails.
    """
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = _create_exclusive(directory, path.name, 0o600 if mode is not None else 0o666)
    try:
        try:
            if mode is not None:
                os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort: not every filesystem allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
