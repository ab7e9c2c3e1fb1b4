"""A remote whose URL carries credentials (``url: ${SS_URL}``), end to end.

The served tree demands HTTP basic authentication.  The tool uses the credentials
to read the remote and fetch the files; they never appear in any output, saved
plan, step summary or error line, and the daemon is never handed them (it would
store them as the image's source and show them to anyone who can list images).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reconciler.adapters.incus import connect
from reconciler.model.plan import PullSource, Writable
from tests.support.e2e import REPO, World
from tests.support.incusd import Incusd
from tests.support.ssserver import ServedTree
from tests.support.sstree import SimpleStreamsTree

pytestmark = pytest.mark.integration

PASSWORD = "s3cr3t-Pa55"
USER = "ci-bot"


def test_remote_credentials_never_leave_the_tool(world: World, tmp_path: Path) -> None:
    built = world.tree.add("tiny", "1.0", "20260101_0000")
    world.served.auth = (USER, PASSWORD)
    host = world.served.url.split("://", 1)[1]
    summary = tmp_path / "summary.md"
    env = {"SS_URL": f"http://{USER}:{PASSWORD}@{host}", "GITHUB_STEP_SUMMARY": str(summary)}
    (world.dir / "images.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        remotes:
          test:
            url: ${{SS_URL}}
        targets:
          local:
            url: unix://{world.daemon.socket}
        images:
          - source: test:tiny/1.0
            aliases: [tiny]
            auto_update: true
        """))
    outputs: list[str] = []

    def run(*args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        if args[0] == "show":  # takes no -f
            done = subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=world.dir,
                                  env={**os.environ, "PYTHONPATH": str(REPO), **env},
                                  capture_output=True, text=True, check=False, timeout=60)
        else:
            done = world.cli(*args, env=env, input="")
        assert done.returncode == code, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        outputs.append(done.stdout + done.stderr)
        return done

    run("validate")
    for fmt in ("text", "json", "markdown"):
        run("plan", "--format", fmt)
    planned = json.loads(run("plan", "--format", "json").stdout)
    (download,) = [c for c in planned["changes"] if c["action"] == "image.download"]
    assert download["pull"]["server"] == world.served.url  # recorded without the userinfo
    assert [w["code"] for w in planned["warnings"]] == ["auto_update.no_source"]

    run("plan", "--out", "plan.json")
    saved = world.dir / "plan.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    for fmt in ("text", "json", "markdown"):
        run("show", "plan.json", "--format", fmt)

    world.served.reset()
    applied = run("apply", "plan.json")
    assert "upload" in applied.stdout + applied.stderr
    assert world.served.unauthorized == []  # the daemon never asked the remote anything
    image = world.images()[built.fingerprint]
    assert not (image.get("update_source") or {}).get("server")
    assert world.aliases() == {"tiny": built.fingerprint}

    run("plan", "--detailed-exitcode")  # 0: nothing left to do
    for fmt in ("text", "json"):
        run("status", "--format", fmt)
    run("lock")

    wrong = world.cli("plan", env={**env, "SS_URL": env["SS_URL"].replace(PASSWORD, "wr0ng-pw")},
                      input="")
    assert wrong.returncode == 1 and "401" in wrong.stderr, wrong.stderr
    assert "wr0ng-pw" not in wrong.stderr + wrong.stdout and "***@" in wrong.stderr

    outputs += [saved.read_text(), summary.read_text(),
                (world.dir / "images.lock.yaml").read_text(),
                json.dumps(world.images()), json.dumps(world.daemon.config()),
                world.daemon.log_tail(200)]
    for text in outputs:
        assert PASSWORD not in text


def test_the_store_adapter_never_hands_the_daemon_credentials(
        incusd: Incusd, sstree: SimpleStreamsTree, ss_http: ServedTree) -> None:
    """Even asked to pull from a URL with userinfo (a plan saved by an older version), the
    adapter sends the daemon the URL without it: the daemon records ``source.server`` and
    shows it to anyone who can list images."""
    built = sstree.add("tiny", "1.0", "20260101_0000")
    host = ss_http.url.split("://", 1)[1]
    pull = PullSource(remote="test", server=f"http://{USER}:{PASSWORD}@{host}",
                      protocol="simplestreams", alias="tiny/1.0")
    with connect(incusd.target()) as store:
        landed = store.pull_image(pull, certificate=None, progress=lambda _t: None,
                                  writable=Writable(auto_update=True, public=False,
                                                    profiles=("default",)))
    assert landed == built.fingerprint
    info = incusd.api("GET", f"/1.0/images/{landed}").metadata
    assert info["update_source"]["server"] == ss_http.url
    assert PASSWORD not in json.dumps(info)
