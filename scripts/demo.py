"""A guided run of incus-images against a throw-away daemon and image server.

Everything runs on this machine: a fresh incusd in a temporary INCUS_DIR and a
simplestreams tree of tiny images served on 127.0.0.1.  Only processes started
here are stopped, by PID.  Run it through ``scripts/demo``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from tests.support.incusd import Incusd
from tests.support.ssserver import serve
from tests.support.sstree import SimpleStreamsTree

BOLD, DIM, RESET = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")


def say(text: str) -> None:
    print(f"\n{BOLD}== {text}{RESET}", flush=True)


def run(work: Path, *args: str) -> int:
    print(f"{DIM}$ incus-images {' '.join(args)}{RESET}", flush=True)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=work, env=env,
                          check=False)
    print(f"{DIM}(exit status {done.returncode}){RESET}", flush=True)
    return done.returncode


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="incus-images-demo-"))
    try:
        tree = SimpleStreamsTree(work / "image-server")
        tree.add("tiny", "1.0", "20260101_0000", aliases=("tiny/1.0", "tiny/current"))
        tree.add("small", "2.0", "20260101_0000")
        with Incusd() as daemon, serve(tree.root) as served:
            if not daemon.running:
                daemon.start()
            say(f"A throw-away incusd (pid {daemon.pid}) and an image server at {served.url}")
            (work / "images.yaml").write_text(textwrap.dedent(f"""\
                version: 1
                owner: demo
                remotes:
                  test:
                    url: {served.url}
                targets:
                  local:
                    url: unix://{daemon.socket}
                images:
                  - source: test:tiny/current
                    aliases: [tiny, {{name: tiny/stable, description: tracked from the server}}]
                    auto_update: true
                    properties: {{team: platform}}
                    expires_at: 2030-12-31
                  - source: test:small/2.0
                    aliases: [small]
                """))
            say("The desired state, as it would be committed (images.yaml)")
            print((work / "images.yaml").read_text())
            say("1. validate: checks the file, touches no network")
            run(work, "validate")
            say("2. plan: what apply would do (exit 2 with --detailed-exitcode = changes)")
            run(work, "plan", "--detailed-exitcode")
            say("3. apply: download by alias, attach aliases, write expiry and properties")
            run(work, "apply", "--yes")
            say("4. plan again: nothing to do")
            run(work, "plan", "--detailed-exitcode")
            tree.add("tiny", "1.0", "20260102_0000", aliases=("tiny/1.0", "tiny/current"))
            say("5. upstream published a new tiny build: plan downloads it, moves the aliases "
                "in one update each, then deletes the old build")
            run(work, "plan")
            say("6. apply lands exactly the planned build (the daemon's hour-old index cache "
                "would land the old one, so the tool uploads the checked files itself)")
            run(work, "apply", "--yes")
            say("7. the store matches the file again")
            run(work, "plan", "--detailed-exitcode", "--format", "json")
        say("What to look at")
        print(textwrap.dedent("""\
            - Each plan line names the action, the image source or alias, short fingerprints
              and the reason; `--format json` is the contract CI scripts read.
            - Step 6 says `via upload` and the last plan warns `auto_update.no_source`: the
              daemon's cached index was older than the remote, and the tool still landed
              exactly the planned fingerprint.
            - Ownership is recorded on the daemon itself (server config key
              user.incus-images.demo.default), so two repositories can share one store.
            Next: point `targets:` at your daemon and `remotes:` at your image server.
            """))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
