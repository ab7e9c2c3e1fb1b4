"""An entry's identity on one target: the one key every module uses for it.

Two entries of a file are the same entry on a target exactly when their
:class:`EntryKey` is equal: (source, type, architecture, target).  The lock
file, the build resolution, ``status`` and ``diff`` all key entries by it.

The tuple's positional order is (target, source, type, architecture), as the lock
key's always was; the canonical *sort* order, used for the lock file and the
diff, is :meth:`EntryKey.sort_key`: (source, type, architecture, target).
"""

from __future__ import annotations

from typing import NamedTuple


class EntryKey(NamedTuple):
    """An entry's identity on one target.

    ``architecture`` is the canonical Incus name the entry resolves to (the
    target's host architecture when the entry names none), except in a key built
    from a file as written (``diff``), where ``""`` stands for "the host's".
    """

    target: str
    source: str
    type: str
    architecture: str

    def sort_key(self) -> tuple[str, str, str, str]:
        """(source, type, architecture, target): the order of the lock file and of diffs."""
        return (self.source, self.type, self.architecture, self.target)

    def label(self) -> str:
        """``test:tiny/1.0 (container, x86_64) on local``."""
        return f"{self.source} ({self.type}, {self.architecture}) on {self.target}"
