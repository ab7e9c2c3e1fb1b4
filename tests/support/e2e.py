"""End-to-end helpers: the real CLI against a real daemon and a served simplestreams tree.

``World`` ties a daemon (``tests.support.incusd``), a simplestreams tree and its
server (``tests.support.sstree`` / ``ssserver``) to a working directory where
tests write ``images.yaml`` and run ``python -m reconciler`` as a subprocess, as
users and CI do.  Nothing listens anywhere but 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.incusd import Incusd
from tests.support.ssserver import ServedTree
from tests.support.sstree import SimpleStreamsTree

REPO = Path(__file__).resolve().parents[2]


@dataclass
class World:
    daemon: Incusd
    tree: SimpleStreamsTree
    served: ServedTree
    dir: Path

    def header(self, *, owner: str | None = None, extra_remotes: str = "",
               targets: str | None = None, certificate: str | None = None) -> str:
        """The top of an ``images.yaml``: remote ``test`` (the served tree), target ``local``."""
        cert = f"\n    certificate: {certificate}" if certificate else ""
        lines = ["version: 1"]
        if owner:
            lines.append(f"owner: {owner}")
        lines.append(f"remotes:\n  test:\n    url: {self.served.url}{cert}{extra_remotes}")
        lines.append(targets if targets is not None
                     else f"targets:\n  local:\n    url: unix://{self.daemon.socket}")
        return "\n".join(lines) + "\n"

    def write(self, images: str, *, name: str = "images.yaml", **header: Any) -> Path:
        """Write a desired-state file: :meth:`header` plus ``images`` (YAML text, dedented)."""
        path = self.dir / name
        path.write_text(self.header(**header) + textwrap.dedent(images))
        return path

    def cli(self, *args: str, file: Path | None = None, env: Mapping[str, str] | None = None,
            input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run ``python -m reconciler ARGS -f FILE`` in :attr:`dir`; never raises on exit status."""
        argv = [sys.executable, "-m", "reconciler", *args]
        if file is not None or (self.dir / "images.yaml").exists():
            argv += ["-f", str(file or self.dir / "images.yaml")]
        full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        full_env.pop("INCUS_SOCKET", None)
        return subprocess.run(argv, cwd=self.dir, env=full_env, input=input, text=True,
                              capture_output=True, timeout=timeout, check=False)

    def images(self, project: str = "default") -> dict[str, dict[str, Any]]:
        """The daemon's images by fingerprint, straight from the API (not from the tool)."""
        listing = self.daemon.api("GET", f"/1.0/images?recursion=1&project={project}").metadata
        return {img["fingerprint"]: img for img in listing}

    def aliases(self, project: str = "default") -> dict[str, str]:
        """Alias name -> fingerprint, straight from the API."""
        listing = self.daemon.api(
            "GET", f"/1.0/images/aliases?recursion=1&project={project}").metadata
        return {a["name"]: a["target"] for a in listing}

    def import_by_hand(self, os_: str, release: str, serial: str, *aliases: str) -> str:
        """Pull a tree build outside the tool (by fingerprint, as an admin would), alias it.

        The daemon's cached index of the tree is flushed first: it would not know the
        build just added (the daemon keeps an index for an hour).
        """
        built = self.tree.add(os_, release, serial)
        self.daemon.flush_stream_cache(self.served.url)
        self.daemon.api("POST", "/1.0/images", {"source": {
            "type": "image", "mode": "pull", "server": self.served.url,
            "protocol": "simplestreams", "fingerprint": built.fingerprint}})
        for name in aliases:
            self.daemon.api("POST", "/1.0/images/aliases",
                            {"name": name, "target": built.fingerprint})
        return built.fingerprint


@pytest.fixture
def world(incusd: Incusd, sstree: SimpleStreamsTree, ss_http: ServedTree,
          tmp_path: Path) -> Iterator[World]:
    """A fresh daemon, an empty tree served over HTTP, and a working directory."""
    work = tmp_path / "repo"
    work.mkdir()
    yield World(daemon=incusd, tree=sstree, served=ss_http, dir=work)
