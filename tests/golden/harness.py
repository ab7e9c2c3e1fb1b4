"""The golden tests' ONE contact surface with the code under test.

Every import of ``reconciler`` (and of the unit-test fakes built on it) that the
golden tests need lives in this module, so that a redesign that moves modules
updates this file only; ``test_golden.py`` and the expected files stay as they are.

What is driven, and how:

* Commands run through the real console entry point (``reconciler.cli.main``):
  the real loader reads a real ``images.yaml`` from a temporary directory, the real
  pipeline plans, applies, saves and shows plans, and the real renderers print.
* Nothing is patched: the commands get their collaborators through the CLI's one
  seam, the :class:`reconciler.services.Services` given to ``main`` (see
  :meth:`World.services`): remote catalogs come from :class:`FakeReader`, each
  target is a :class:`FakeStore` (the in-memory image store), the clock is fixed
  at :data:`CLOCK`, standard input is empty and not a terminal.  The environment
  is pinned too (``INCUS_SOCKET`` set, ``GITHUB_STEP_SUMMARY``/``INCUS_DIR``
  removed, git reads no user or system configuration).
* Nothing else is faked: apply takes its real leases on the fake stores, ``plan
  --out`` writes a real file, ``show`` reads it back, ``lock`` writes a real lock file.

Normalisation happens in ONE place, :meth:`World.normalise`: the temporary
directory's path is replaced by ``$TMP``.  The commands are run from inside that
directory with relative paths, so the path should never appear; the replacement
is a guard, so that a regression that starts printing absolute paths shows up as a
readable diff rather than as a per-machine difference.  Nothing else in the
outputs is random: plan ``created_at`` comes from :data:`CLOCK`, the lease's token
and times are never printed and the lease is removed when apply ends, and git
commits made by :meth:`World.git_commit` have fixed authors and dates.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import main as _cli_main
from reconciler.core.inventory import encode as _encode_inventory
from reconciler.model.observed import (
    Inventory,
    ObservedImage,
    Profile,
    RecordedImage,
    UpdateSource,
    inventory_key,
)
from reconciler.model.remote import RemoteImage
from reconciler.ports import ImageStore, RemoteReader
from reconciler.services import Services
from tests.support.builders import build, catalog
from tests.support.fakes import FakeReader, FakeStore

__all__ = [
    "CLOCK", "REMOTE_URL", "Inventory", "ObservedImage", "Profile", "RecordedImage",
    "RemoteImage", "UpdateSource", "World", "at", "build", "image", "install",
]

CLOCK = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
"""The one "now" every plan is made at (never today's date)."""

REMOTE_URL = "https://images.test"
SOCKET = "/run/golden/incus/unix.socket"


@dataclass(frozen=True)
class Ran:
    """One command: its argv, exit status and both streams (normalised)."""

    argv: tuple[str, ...]
    code: int
    out: str
    err: str


@dataclass
class World:
    """A temporary directory with ``images.yaml``, remotes and in-memory stores.

    ``remotes`` maps a remote name to the builds it serves (the catalog is made by
    :func:`tests.support.builders.catalog`: the newest build of an alias wins it).
    ``stores`` maps a target name to its :class:`FakeStore`; every store sees every
    remote (its ``universe``), as a daemon could reach every image server.
    """

    root: Path
    capsys: pytest.CaptureFixture[str]
    remotes: dict[str, list[RemoteImage]] = field(default_factory=dict)
    stores: dict[str, FakeStore] = field(default_factory=dict)
    reader: FakeReader = field(default_factory=lambda: FakeReader({}))
    transcript: list[Ran] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    """Golden outputs so far, by name (``plan.txt``): see :meth:`keep`."""
    _kept: set[int] = field(default_factory=set)

    # -- the world -----------------------------------------------------------------------

    def publish(self, remote: str, *builds: RemoteImage, url: str = REMOTE_URL) -> None:
        """Serve ``builds`` (added to what ``remote`` already serves) from now on."""
        self.remotes.setdefault(remote, []).extend(builds)
        cat = catalog(*self.remotes[remote], name=remote, url=url)
        self.reader.catalogs[remote] = cat
        for store in self.stores.values():
            store.universe[cat.url] = cat

    def store(self, target: str = "local", **kw: Any) -> FakeStore:
        """The in-memory store of ``target`` (made on first use; ``kw`` for FakeStore)."""
        if target not in self.stores:
            universe = dict(self.reader.catalogs)
            self.stores[target] = FakeStore(target, universe=universe, **kw)
        return self.stores[target]

    def record(self, target: str, owner: str, images: Mapping[str, RecordedImage], *,
               project: str = "default", server: Mapping[str, str] | None = None) -> None:
        """Write ``owner``'s ownership record (inventory) into ``target``'s server config."""
        inv = Inventory(owner=owner, project=project, images=dict(images),
                        server=dict(server or {}))
        self.store(target).config[inventory_key(owner, project)] = _encode_inventory(inv)

    def write(self, text: str, name: str = "images.yaml") -> None:
        (self.root / name).write_text(text, encoding="utf-8")

    def read(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def exists(self, name: str) -> bool:
        return (self.root / name).exists()

    def connect(self, target: Any, *, operation_timeout: float | None = None
                ) -> AbstractContextManager[ImageStore]:
        """The target's in-memory store; adapter options (timeouts) do not apply to it.
        It lives as long as the world: a command "closing" it leaves it as it is."""
        return nullcontext(self.stores[target.name])

    def open_reader(self) -> AbstractContextManager[RemoteReader]:
        return nullcontext(self.reader)

    def services(self) -> Services:
        """The collaborators every command is run with (the CLI's one seam)."""
        return Services(connect=self.connect, reader=self.open_reader, clock=lambda: CLOCK,
                        environ=os.environ, stdin=io.StringIO(""))

    def git_commit(self, *names: str, origin: str | None = None) -> None:
        """Commit ``names`` in a git repository at the root (fixed author, date, config)."""
        env = {**os.environ, "GIT_AUTHOR_NAME": "Golden", "GIT_AUTHOR_EMAIL": "golden@example.test",
               "GIT_COMMITTER_NAME": "Golden", "GIT_COMMITTER_EMAIL": "golden@example.test",
               "GIT_AUTHOR_DATE": "2026-11-20T10:00:00Z",
               "GIT_COMMITTER_DATE": "2026-11-20T10:00:00Z"}

        def git(*args: str) -> None:
            subprocess.run(["git", "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false",
                            *args], cwd=self.root, env=env, check=True, capture_output=True)

        if not (self.root / ".git").exists():
            git("init", "-q")
            if origin:
                git("remote", "add", "origin", origin)
        git("add", "--", *names)
        git("commit", "-q", "-m", "golden")

    # -- running commands ----------------------------------------------------------------

    def normalise(self, text: str) -> str:
        """The ONE normalisation of every output (see the module docstring).

        Besides the temporary directory, apply's progress lines: targets are applied
        at the same time, so lines of two targets interleave in any order; within each
        run of progress lines they are put in target order, each target's own lines
        keeping theirs (a stable sort), which is what the golden files hold.
        """
        text = text.replace(str(self.root.resolve()), "$TMP").replace(str(self.root), "$TMP")
        return _targets_in_order(text)

    def run(self, *argv: str) -> Ran:
        """Run ``incus-images ARGV`` in the root directory; record it in the transcript."""
        self.capsys.readouterr()
        code = _cli_main(list(argv), services=self.services())
        out, err = self.capsys.readouterr()
        ran = Ran(tuple(argv), code, self.normalise(out), self.normalise(err))
        self.transcript.append(ran)
        return ran


    def keep(self, name: str, text: str, ran: Ran | None = None) -> None:
        """Keep ``text`` as output ``name``; ``ran`` is the command whose stdout it is
        (the log then does not repeat that stdout)."""
        assert name not in self.outputs, name
        self.outputs[name] = text
        if ran is not None:
            self._kept.add(id(ran))

    def log(self) -> str:
        """Every command run: argv, exit status, stderr, and stdout kept nowhere else."""
        lines: list[str] = []
        for ran in self.transcript:
            lines.append("$ incus-images " + " ".join(ran.argv))
            lines.append(f"exit {ran.code}")
            for stream, text in (("stdout", ran.out), ("stderr", ran.err)):
                if not text or (stream == "stdout" and id(ran) in self._kept):
                    continue
                lines.append(f"{stream}:")
                lines += ["  " + line for line in text.splitlines()]
            lines.append("")
        return "\n".join(lines)


def install(monkeypatch: pytest.MonkeyPatch, world: World) -> None:
    """Pin what the world does not: the working directory and the environment (the
    commands get the world's stores, reader and clock from :meth:`World.services`)."""
    monkeypatch.chdir(world.root)
    monkeypatch.setenv("INCUS_SOCKET", SOCKET)
    for name in ("INCUS_DIR", "GITHUB_STEP_SUMMARY", "GIT_DIR", "GIT_WORK_TREE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(world.root.parent))


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A UTC time: ``at(2026, 11, 1)``."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def image(fp: str, **kw: Any) -> ObservedImage:
    """An observed image (fields as the daemon reports them)."""
    return ObservedImage.model_validate({"fingerprint": fp, **kw})


_PROGRESS = re.compile(r"^(?P<target>[\w.-]+): (?:image|alias|server)\.")


def _targets_in_order(text: str) -> str:
    """``text`` with each run of consecutive progress lines stably sorted by target."""
    out: list[str] = []
    run: list[str] = []
    for line in text.splitlines(keepends=True):
        if _PROGRESS.match(line):
            run.append(line)
            continue
        out += sorted(run, key=_target_of)
        run = []
        out.append(line)
    out += sorted(run, key=_target_of)
    return "".join(out)


def _target_of(line: str) -> str:
    found = _PROGRESS.match(line)
    return found.group("target") if found else ""
