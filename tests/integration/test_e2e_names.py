"""Names Incus would not keep as written never reach the daemon.

The first test shows the trap on the real daemon: Incus 6.0 takes an alias of any
name, and a NUL cuts it short (or garbles the request), so the alias it makes is not
the one asked for: no plan would ever find it, and every later apply would try again.  The second
shows that ``validate`` and ``plan`` refuse such a file, with ``FILE:LINE:COLUMN``,
before any request: the remote is never read and the store is left as it was.
"""

from __future__ import annotations

import pytest

from tests.support.e2e import World

pytestmark = pytest.mark.integration


def test_the_daemon_does_not_keep_an_alias_name_with_a_nul(world: World) -> None:
    """Text goes to the database NUL-terminated: the name is cut short there, and
    depending on its length the request's later fields are misread too."""
    fp = world.import_by_hand("tiny", "1.0", "20260101_0000")
    world.daemon.api("POST", "/1.0/images/aliases", {"name": "tiny\0x", "target": fp})
    assert world.aliases() == {"tiny": fp}
    misread = world.daemon.api("POST", "/1.0/images/aliases",
                               {"name": "small\0one", "target": fp}, check=False)
    assert misread.status >= 400 or "small\0one" not in world.aliases()


def test_validate_and_plan_refuse_a_nul_alias_before_any_request(world: World) -> None:
    world.tree.add("tiny", "1.0", "20260101_0000")
    path = world.write("""\
        images:
          - source: test:tiny/1.0
            aliases: ["tiny\\0one"]
            properties: {"os\\0": tiny}
            profiles: ["default", "a/b"]
        """)
    before = (world.images(), world.aliases(), world.daemon.config())
    lines = path.read_text().splitlines()
    row = next(i for i, line in enumerate(lines, 1) if "aliases:" in line)
    expected = [
        # The YAML reader refuses a NUL anywhere, at its place, before the name rules run.
        f"{path}:{row}:15: control character U+0000 is not allowed in a value or key",
        f"{path}:{row + 1}:18: control character U+0000 is not allowed in a value or key",
        f"{path}:{row + 2}:27: images[0].profiles[1]: profile 'a/b' must not contain /",
    ]
    for command in ("validate", "plan"):
        proc = world.cli(command)
        assert proc.returncode == 1, (command, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
        got = [line for line in proc.stderr.splitlines() if line.startswith(str(path))]
        assert got == expected, (command, proc.stderr)
    assert world.served.requests == [], "the remote was read"
    assert (world.images(), world.aliases(), world.daemon.config()) == before
