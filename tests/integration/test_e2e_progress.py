"""What a person at a terminal and a CI log see while apply pulls a slow image (issue 11).

The real CLI runs as a subprocess against a real daemon pulling from a throttled
simplestreams server on 127.0.0.1, once under a pseudo-terminal (``os.openpty``:
stdin, stdout and stderr are the terminal, as in a shell) and once with pipes.
On the terminal the pull draws a bar with its percentage and the image's total
size, and the plan is coloured; with ``NO_COLOR``, ``--no-color`` or
``TERM=dumb`` nothing but plain text reaches the terminal; through pipes there
are no escape sequences and the lines carry the time elapsed.  (The 30 s
heartbeat is unit-tested with a clock moved by hand: tests/unit/test_progress.py.)
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Mapping

import pytest

from reconciler.render.units import human_bytes
from tests.support.e2e import REPO, World

pytestmark = pytest.mark.integration

PAYLOAD = 2_000_000
"""Random bytes in the rootfs (xz cannot shrink them)."""
RATE = 500_000
"""Bytes per second the server sends image files at: the pull takes about 4 s."""
IMAGES = """
    images:
      - source: test:big/1.0
        aliases: [big]
"""
ESCAPE = re.compile(r"\x1b|\x9b")
CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def run_on_a_terminal(world: World, *args: str, env: Mapping[str, str] | None = None,
                      timeout: float = 120) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal (120 x 40) as stdin, stdout and stderr; return
    its exit status and everything it wrote to the terminal."""
    argv = [sys.executable, "-m", "reconciler", *args, "-f", str(world.dir / "images.yaml")]
    inherited = {k: v for k, v in os.environ.items()
                 if k not in ("INCUS_SOCKET", "NO_COLOR", "COLUMNS", "LINES")}
    full_env = {**inherited, "PYTHONPATH": str(REPO), "TERM": "xterm-256color", **(env or {})}
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(argv, cwd=world.dir, env=full_env, stdin=slave, stdout=slave,
                            stderr=slave, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, b"".join(chunks).decode("utf-8", errors="replace")


def slow_image(world: World) -> int:
    """A big/1.0 build served slowly; its size (bytes)."""
    built = world.tree.add("big", "1.0", "20260101_0000", payload=PAYLOAD)
    world.write(IMAGES, owner="incus-images")
    world.served.rate = RATE
    world.served.reset()
    return built.size


def test_on_a_terminal_a_slow_pull_draws_a_bar_with_percentage_and_total(
        world: World) -> None:
    size = slow_image(world)
    code, screen = run_on_a_terminal(world, "apply", "--yes")
    assert code == 0, screen
    text = CONTROL.sub("", screen)
    assert "━" in text, screen                              # the bar
    assert re.search(r"\b\d{1,3}%", text), screen          # its percentage
    assert re.search(rf"\d+\.\d/{re.escape(human_bytes(size))}", text), screen  # of the total
    assert re.search(r"MB/s|kB/s", text), screen          # the speed
    assert "local: test:big/1.0" in text                   # which pull, on which target
    assert re.search(r"image\.download test:big/1\.0 [0-9a-f]{12}: .*done \(via pull\).* \[\d+s\]",
                     text), screen
    # Colour: the plan's marker in green, the verdict in bold green.
    assert "\x1b[32m+ image.download\x1b[0m" in screen
    assert "\x1b[1;32mApply complete\x1b[0m" in screen
    assert text.count("Plan: 1 to download") == 1          # the plan once, then a summary
    assert re.search(r"done: +1 image\.download \(\d+\.\d MB downloaded\), 1 alias\.create",
                     text), screen


@pytest.mark.parametrize(("args", "env"), [
    ((), {"NO_COLOR": "1"}),
    (("--no-color",), {}),
    ((), {"TERM": "dumb"}),
], ids=["NO_COLOR", "--no-color", "TERM=dumb"])
def test_on_a_terminal_without_colour_there_are_no_escape_sequences(
        world: World, args: tuple[str, ...], env: dict[str, str]) -> None:
    slow_image(world)
    code, screen = run_on_a_terminal(world, *args, "apply", "--yes", env=env)
    assert code == 0, screen
    assert not ESCAPE.search(screen), repr(screen)
    # Progress as plain lines instead of bars: with the time elapsed, and each change's.
    assert re.search(r"image\.download test:big/1\.0 [0-9a-f]{12}: .*%.* \[\d+s elapsed\]",
                     screen), screen
    assert re.search(r"done \(via pull\) \[\d+s\]", screen), screen


def test_through_pipes_lines_are_plain_and_timed(world: World) -> None:
    slow_image(world)
    done = world.cli("apply", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert not ESCAPE.search(done.stdout + done.stderr)
    assert "\r" not in done.stderr                        # no line rewritten in place
    progress = [line for line in done.stderr.splitlines() if line.endswith(" elapsed]")]
    assert progress, done.stderr
    assert all(re.search(r": .*\[\d+s elapsed\]$", line) for line in progress)
    assert re.search(r"done \(via pull\) \[\d+s\]$", done.stderr, re.M), done.stderr
    assert re.search(r"^Apply complete: 2 done in \d+s\.$", done.stdout, re.M), done.stdout
    assert done.stdout.count("Plan: 1 to download") == 1
