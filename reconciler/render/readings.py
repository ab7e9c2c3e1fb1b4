"""What a progress text says in numbers: the one parser of the words apply reports.

A download's progress reaches the reporters as text: the daemon's
``download_progress`` of a pull (``"rootfs: 37% (45.20MB/s)"``, ``"37% (45.20MB/s)"``,
``"123.45MB (5.00MB/s)"``, free text for OCI) and the tool's own upload counter
(``"upload: 8.4MB"``, ``"upload: 62.9MB done"``).  :func:`read` turns one such text
into a :class:`Reading`; the reporters draw bars and write lines from it and
never parse text themselves.

Invariants: pure and total (any string gives a Reading, never an exception); a
number that is not in the text is None, never guessed.  ``done_bytes`` is known
only when the text counts bytes or gives a percentage of a known ``size``; the
percentage of the ``metadata`` stage (a small file before the rootfs, whose own
percentage restarts at 0) says nothing about the image's bytes, so it gives no
``done_bytes``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_STAGE = re.compile(r"^\s*([A-Za-z][\w .-]*?):\s")
_PERCENT = re.compile(r"(\d{1,3}(?:\.\d+)?)\s?%")
_AMOUNT = r"(\d+(?:\.\d+)?)\s?([kKMGTP]i?B|B)"
_SPEED = re.compile(_AMOUNT + r"/s")
_BYTES = re.compile(_AMOUNT + r"(?!/s)(?![\w/])")
_UNITS = {"B": 1, "kB": 10**3, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "PB": 10**15, "KiB": 2**10, "kiB": 2**10, "MiB": 2**20, "GiB": 2**30,
          "TiB": 2**40, "PiB": 2**50}
SMALL_STAGES = frozenset({"metadata"})
"""Stages whose percentage is of a small side file, not of the image."""


@dataclass(frozen=True)
class Reading:
    """One progress text in numbers (None: the text does not say)."""

    stage: str | None = None
    """``rootfs``, ``metadata``, ``upload``: the words before the first colon."""
    percent: float | None = None
    """0 to 100, of the current stage's file."""
    done_bytes: int | None = None
    """Bytes of the image transferred so far."""
    speed: float | None = None
    """Bytes per second, as the daemon measured it."""


def _amount(number: str, unit: str) -> int:
    return int(float(number) * _UNITS.get(unit, 1))


def read(text: str, size: int | None = None) -> Reading:
    """``text`` (one progress text) in numbers; ``size`` is the image's size in bytes,
    when known (the plan's ``size``), to turn a percentage into bytes."""
    stage_match = _STAGE.match(text)
    stage = stage_match.group(1).strip() if stage_match else None
    rest = text[stage_match.end():] if stage_match else text
    pct_match = _PERCENT.search(rest)
    percent = min(float(pct_match.group(1)), 100.0) if pct_match else None
    speed_match = _SPEED.search(rest)
    speed = float(_amount(*speed_match.groups())) if speed_match else None
    done: int | None = None
    if percent is not None:
        if size is not None and stage not in SMALL_STAGES:
            done = round(size * percent / 100)
    else:
        bytes_match = _BYTES.search(rest)
        if bytes_match:
            done = _amount(*bytes_match.groups())
    if done is not None and size is not None:
        done = min(done, size)
    return Reading(stage=stage, percent=percent, done_bytes=done, speed=speed)


def percent_in(text: str) -> float | None:
    """The first ``NN%`` or ``NN.N%`` in ``text``, else None."""
    match = _PERCENT.search(text)
    return float(match.group(1)) if match else None
