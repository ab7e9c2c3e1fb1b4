"""Test constants that several test modules share, defined once (issue 8).

* ``TINY``, ``TINY_MANUAL``, ``TINY_TEAM``, ``TINY_TWO_ALIASES``: the ``images:``
  part of a desired-state file for the tiny image the real-daemon tests serve as
  ``test:tiny/1.0`` (:meth:`tests.support.e2e.World.write` adds ``version``,
  ``remotes`` and ``targets``).  Four variants, byte for byte what the tests had;
  they are indented as ``World.write`` expects (it dedents).
* ``HEAD``: the first four lines of a desired-state file (version and one remote),
  for the loader's unit tests; cases appended to it start on line 5.
* ``PEM_CERT``, ``PEM_KEY``: PEM-shaped text (not a real certificate or key).
* ``PIN_FP``: a 64-hex fingerprint to pin (the one in ``examples/pinned.yaml``).
* ``DOWNLOAD_FP``: a fingerprint whose short form ``4f3a2b1c9d8e`` reads well in
  expected output.
"""

from __future__ import annotations

TINY = """
    images:
      - source: test:tiny/1.0
        aliases: [tiny]
        auto_update: true
"""
"""Tracked, auto-updated by the daemon, one alias."""

TINY_MANUAL = """
    images:
      - source: test:tiny/1.0
        aliases: [tiny]
"""
"""Tracked, without the daemon's auto-update."""

TINY_TEAM = """
    images:
      - source: test:tiny/1.0
        aliases: [tiny]
        properties: {team: web}
"""
"""With a property (a field a saved plan records); append ``public: true`` lines to it."""

TINY_TWO_ALIASES = """
    images:
      - source: test:tiny/1.0
        aliases: [tiny, tiny/current]
        auto_update: true
"""
"""Auto-updated, two aliases (both move together)."""

HEAD = """\
version: 1
remotes:
  images:
    url: https://images.linuxcontainers.org
"""

PEM_CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
PEM_KEY = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n"
PIN_FP = "5d3c1e0a8b7f4e2d9c6b1a0f3e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d"
DOWNLOAD_FP = "4f3a2b1c9d8e" + "0" * 52
