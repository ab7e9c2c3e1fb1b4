"""Requests and wall time of one plan, as the number of images in the store grows.

For each store size N, the store holds N unmanaged images and the file declares
a fixed set of 5 entries from a local simplestreams tree (already applied).  The
figures show that observing a target costs a constant number of requests (one
list call per kind, never one per image) and each remote is read once per run.
Everything runs on 127.0.0.1 against a throw-away incusd.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.adapters.incus import connect
from reconciler.adapters.remotes.reader import HttpRemoteReader
from reconciler.apply.executor import apply_plan
from reconciler.desired.load import load_config
from reconciler.pipeline import make_plan
from tests.support.images import build_unified_image
from tests.support.incusd import Incusd
from tests.support.ssserver import serve
from tests.support.sstree import SimpleStreamsTree


def upload(daemon: Incusd, index: int) -> None:
    built = build_unified_image("bench", str(index), "20250101_0000")
    daemon._raw("POST", "/1.0/images", built.metadata,
                headers={"Content-Type": "application/octet-stream"})


def _counter(calls: Counter[str]) -> Any:
    def hook(response: Any, *a: Any, **k: Any) -> None:
        calls["daemon"] += 1
    return hook


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="0,100,300", help="store sizes, comma separated")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="incus-images-bench-"))
    tree = SimpleStreamsTree(work / "tree")
    for i in range(5):
        tree.add(f"os{i}", "1.0", "20260101_0000")
    print(f"{'images':>7} {'daemon requests':>16} {'remote requests':>16} {'plan seconds':>13}")
    with Incusd() as daemon, serve(tree.root) as served:
        if not daemon.running:
            daemon.start()
        path = work / "images.yaml"
        path.write_text(textwrap.dedent(f"""\
            version: 1
            remotes: {{test: {{url: "{served.url}"}}}}
            targets: {{local: {{url: "unix://{daemon.socket}"}}}}
            images:
            """) + "".join(f"  - {{source: test:os{i}/1.0, aliases: [os{i}]}}\n"
                           for i in range(5)))
        config = load_config(path, {})
        now = datetime.now(UTC)
        store = connect(config.targets["local"])
        stores = {"local": store}
        first = make_plan(config, stores, HttpRemoteReader(), targets=None, allow_empty=False,
                          now=now)
        apply_plan(first, stores=stores, reader=HttpRemoteReader(),
                   remotes=config.remotes)
        count = 0
        for size in sizes:
            while count < size:
                upload(daemon, count)
                count += 1
            calls: Counter[str] = Counter()
            store.transport.session.hooks["response"] = [_counter(calls)]
            served.reset()
            started = time.perf_counter()
            # A new reader per plan, as each command opens one: every remote is read again.
            plan = make_plan(config, stores, HttpRemoteReader(), targets=None,
                             allow_empty=False, now=now)
            seconds = time.perf_counter() - started
            assert not plan.changes
            print(f"{count + 5:>7} {calls['daemon']:>16} {len(served.requests):>16} "
                  f"{seconds:>13.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
