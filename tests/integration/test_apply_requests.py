"""What apply costs the daemon, counted in requests (never in time), on a real incusd.

Every request the adapter sends is counted through its ``requests`` session hook.
Apply observes each target once and keeps that observation current itself: no
download lists the store's images again, the ownership bookkeeping writes the
server config a few times per target (not a few times per download) and starts
each write from the config it last wrote, and the number of requests does not
depend on how many images the store holds.
"""

from __future__ import annotations

import re
import textwrap
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reconciler.adapters.incus import IncusStore, connect
from reconciler.adapters.remotes.reader import HttpRemoteReader
from reconciler.apply.executor import apply_plan
from reconciler.desired.load import load_config
from reconciler.model.config import Config
from reconciler.model.result import ApplyResult, Status
from reconciler.pipeline import make_plan
from tests.support.e2e import World
from tests.support.images import build_unified_image
from tests.support.incusd import Incusd
from tests.support.sockproxy import counting_proxy
from tests.support.ssserver import ServedTree
from tests.support.sstree import SimpleStreamsTree

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def counting(store: IncusStore) -> Counter[str]:
    """Count every request ``store`` sends from now on, as ``METHOD /path`` (without
    the query) plus ``list`` for ``GET /1.0/images?recursion=1``."""
    calls: Counter[str] = Counter()

    def hook(response: Any, *args: Any, **kwargs: Any) -> None:
        request = response.request
        path = shape(request.path_url.split("?", 1)[0])
        calls[f"{request.method} {path}"] += 1
        calls["all"] += 1
        if request.method == "GET" and path == "/1.0/images" and "recursion" in request.url:
            calls["list"] += 1

    store.session.hooks["response"] = [hook]
    return calls


def shape(path: str) -> str:
    """``path`` with what differs from run to run (operation ids, fingerprints, alias
    names) replaced by placeholders."""
    path = re.sub(r"^/1\.0/operations/[^/]+", "/1.0/operations/ID", path)
    path = re.sub(r"^/1\.0/images/aliases/.+", "/1.0/images/aliases/NAME", path)
    return re.sub(r"^/1\.0/images/[0-9a-f]{64}", "/1.0/images/FP", path)


def timed(calls: Counter[str]) -> Counter[str]:
    """``calls`` without the waits for operations, whose number depends on how long
    the daemon takes (one ``/wait`` round per two seconds), and without the total."""
    return Counter({k: v for k, v in calls.items()
                    if "/1.0/operations/" not in k and k != "all"})


def add_unmanaged(daemon: Incusd, count: int, start: int = 0) -> None:
    """``count`` images nobody manages, uploaded straight to the daemon."""
    for i in range(start, start + count):
        built = build_unified_image("other", str(i), "20250101_0000")
        daemon._raw("POST", "/1.0/images", built.metadata,
                    headers={"Content-Type": "application/octet-stream"})


def write_config(path: Path, served: ServedTree, daemon: Incusd, names: list[str]) -> Config:
    path.write_text(textwrap.dedent(f"""\
        version: 1
        remotes: {{test: {{url: "{served.url}"}}}}
        targets: {{local: {{url: "unix://{daemon.socket}"}}}}
        images:
        """) + "".join(f"  - {{source: test:{n}/1.0, aliases: [{n}]}}\n" for n in names))
    return load_config(path, {})


def apply_counted(config: Config, store: IncusStore) -> tuple[ApplyResult, Counter[str], int]:
    """Plan (not counted), then apply, counting its requests; and how many downloads."""
    stores = {"local": store}
    plan = make_plan(config, stores, HttpRemoteReader(), targets=None, allow_empty=False,
                     now=NOW)
    downloads = sum(1 for c in plan.changes if c.action.value == "image.download")
    calls = counting(store)
    result = apply_plan(plan, stores=stores, reader=HttpRemoteReader(), remotes=config.remotes)
    store.session.hooks["response"] = []
    assert result.ok, [o.message for o in result.outcomes if o.status is Status.FAILED]
    return result, calls, downloads


@pytest.fixture
def world(incusd: Incusd, sstree: SimpleStreamsTree, ss_http: ServedTree
          ) -> Iterator[tuple[Incusd, SimpleStreamsTree, ServedTree]]:
    yield incusd, sstree, ss_http


def test_downloads_cost_a_few_requests_each_and_no_image_list(
    world: tuple[Incusd, SimpleStreamsTree, ServedTree], tmp_path: Path,
) -> None:
    daemon, tree, served = world
    add_unmanaged(daemon, 3)
    names = [f"os{i}" for i in range(8)]
    for n in names:
        tree.add(n, "1.0", "20260101_0000")
    config = write_config(tmp_path / "images.yaml", served, daemon, names)
    with connect(config.targets["local"]) as store:
        _, calls, downloads = apply_counted(config, store)
    assert downloads == 8
    assert calls["list"] == 1, calls  # the one observation; no download lists the store
    # Ownership bookkeeping: one write marks the pulls in flight (up to 32 at once); the
    # images landed and the aliases made ride along with the closing write; the config
    # is read once, by the observation, and each write starts from the config the
    # previous one wrote.
    assert calls["GET /1.0"] <= 2, calls
    assert calls["PATCH /1.0"] <= 2, calls
    # Waits for operations are left out (their number depends on how long the daemon
    # takes: one /wait round per two seconds) and counted as one per download.
    sent = sum(timed(calls).values()) - calls["list"] + downloads
    per_download = (sent - 8) / downloads
    assert per_download <= 4, calls  # POST, wait, GET of the image, alias


def test_the_store_s_size_does_not_change_what_apply_asks(
    world: tuple[Incusd, SimpleStreamsTree, ServedTree], tmp_path: Path,
) -> None:
    daemon, tree, served = world
    counts = []
    added = 0
    declared: list[str] = []
    for size, names in ((5, ["a0", "a1"]), (50, ["b0", "b1"])):
        add_unmanaged(daemon, size - added, added)
        added = size
        for n in names:
            tree.add(n, "1.0", "20260101_0000")
        declared += names  # the images applied before stay declared: no deletes
        daemon.flush_stream_cache(served.url)  # its index of the tree is an hour old
        config = write_config(tmp_path / f"images-{size}.yaml", served, daemon, declared)
        with connect(config.targets["local"]) as store:
            _, calls, downloads = apply_counted(config, store)
        assert downloads == 2
        counts.append(calls)
    small, large = counts
    assert timed(small) == timed(large), (small, large)
    assert small["list"] == large["list"] == 1


def test_the_apply_command_lists_the_store_once(
    incusd: Incusd, sstree: SimpleStreamsTree, ss_http: ServedTree, tmp_path: Path,
) -> None:
    """``apply --yes`` as a whole: a constant check before the leases, one observation
    under them (the plan's), and apply carries the plan out on it: the store's images
    are listed once, whatever else the command does."""
    world = World(daemon=incusd, tree=sstree, served=ss_http, dir=tmp_path)
    world.daemon.flush_stream_cache(world.served.url)
    for n in ("c0", "c1"):
        world.tree.add(n, "1.0", "20260101_0000")
    with counting_proxy(world.daemon.socket) as proxy:
        world.write("images:\n  - {source: test:c0/1.0, aliases: [c0]}\n"
                    "  - {source: test:c1/1.0, aliases: [c1]}\n",
                    targets=f"targets:\n  local:\n    url: {proxy.url}")
        done = world.cli("apply", "--yes")
        seen = list(proxy.requests)
    assert done.returncode == 0, done.stdout + done.stderr
    lists = [r for r in seen if r.startswith("GET /1.0/images?") and "recursion" in r]
    assert len(lists) == 1, seen
    assert set(world.aliases()) == {"c0", "c1"}


def test_a_plan_whose_image_list_is_slow_says_which_target_it_is_still_reading(
    incusd: Incusd, sstree: SimpleStreamsTree, ss_http: ServedTree, tmp_path: Path,
) -> None:
    """The daemon answers the image list only once it is whole (tens of seconds for
    thousands of images): a proxy holds it 11 s here. After 10 s plan notes on stderr,
    once, which target it is still reading, and then plans as usual."""
    world = World(daemon=incusd, tree=sstree, served=ss_http, dir=tmp_path)
    world.tree.add("c0", "1.0", "20260101_0000")
    with counting_proxy(world.daemon.socket, hold={"GET /1.0/images?": 11.0}) as proxy:
        world.write("images:\n  - {source: test:c0/1.0, aliases: [c0]}\n",
                    targets=f"targets:\n  local:\n    url: {proxy.url}")
        done = world.cli("plan", "--detailed-exitcode")
    assert done.returncode == 2, done.stdout + done.stderr
    notes = [line for line in done.stderr.splitlines() if "still reading" in line]
    assert notes == ["incus-images: note: still reading target 'local' after 10 s (a daemon "
                     "sends its image list only once it is whole: thousands of images take "
                     "a while)"]
    assert "image.download" in done.stdout
