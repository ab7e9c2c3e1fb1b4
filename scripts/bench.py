"""The figures of issue 10, each as a ratio to a floor measured in the same run.

Everything runs on 127.0.0.1: a throw-away incusd (tests/support/incusd.py, its own
INCUS_DIR), simplestreams trees served over HTTPS (tests/support/ssserver.py,
sstree.py), the ``incus`` CLI (/usr/bin/incus) with its own INCUS_CONF.  Only the
processes this script starts are stopped, by their PID.

Each figure is measured ``--repeats`` times, value and floor side by side in each
repeat; it prints the median ratio and its spread (min-max), and the median
seconds of both, so a noisy machine does not decide it:

  plan-store    plan (in process) on stores of N images  /  the daemon's own list calls
                (GET /1.0, images, aliases) + fetching the remote index
  plan-index    ``plan`` (a process) with a generated public-size products file  /
                ``json.load`` of that file in a process: time and peak RSS
  plan-targets  plan of 10 targets (projects)  /  plan of 1
  apply-store   ``apply`` of 2 new images into stores of N images, minus one ``plan``  /
                max(1 s, 2 x ``incus image copy`` of the two): the goal's bound (<= 1.00x)
  requests      daemon requests per further download: applies of 10 and 20 tiny images
                (absolute; and the all-in average over a run with nothing to do)
  apply-big     ``apply`` of 9 images of 32-56 MB (random, incompressible rootfs)  /
                a loop of ``incus image copy``, and  /  2 and 3 raw pulls at once;
                and, to show where the time goes, apply minus a ``plan`` process  /
                the raw pulls
  apply-tiny    ``apply`` of 20 tiny images  /  a loop of ``incus image copy``

``--quick`` shrinks every size to check the script itself in a few minutes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import lzma
import os
import random
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from reconciler import pipeline, timeouts
from reconciler.desired.load import load_config
from reconciler.model.config import Config
from reconciler.services import system_services
from tests.support.bigindex import public_like
from tests.support.images import build_unified_image
from tests.support.incusd import Incusd
from tests.support.sockproxy import REQUEST_LINE
from tests.support.ssserver import ServedTree, TLSFiles, make_tls, serve
from tests.support.sstree import SimpleStreamsTree

REPO = Path(__file__).resolve().parents[1]
INCUS = "/usr/bin/incus"
TIME = "/usr/bin/time"
SYSTEM_CAS = Path("/etc/ssl/certs/ca-certificates.crt")
READ_TIMEOUT = "600"
FIGURES = ("plan-store", "plan-targets", "plan-index", "apply-store", "requests", "apply-big",
           "apply-tiny")


@dataclass(frozen=True)
class Sizes:
    stores: tuple[int, ...]
    products: int
    targets: int
    tiny: int
    big: int
    big_mb: tuple[int, int]


FULL = Sizes(stores=(1000, 5000), products=2168, targets=10, tiny=20, big=9, big_mb=(32, 56))
QUICK = Sizes(stores=(20, 60), products=200, targets=10, tiny=5, big=3, big_mb=(2, 4))


# --- measuring ----------------------------------------------------------------------------


@dataclass
class Figure:
    """One figure: (value, floor) per repeat, and what the ratio means."""

    name: str
    meaning: str
    pairs: list[tuple[float, float]] = field(default_factory=list)
    unit: str = "s"

    def line(self) -> str:
        if not self.pairs:
            return f"{self.name:<34} (not measured)"
        ratios = [v / f for v, f in self.pairs if f > 0]
        values, floors = [v for v, _ in self.pairs], [f for _, f in self.pairs]
        if self.unit == "req":  # an absolute count: no floor
            return (f"{self.name:<34} {statistics.median(values):6.2f} per download  "
                    f"({self.meaning})")
        return (f"{self.name:<34} {statistics.median(ratios):6.2f}x "
                f"[{min(ratios):.2f}-{max(ratios):.2f}]  "
                f"{statistics.median(values):9.3f} {self.unit} vs "
                f"{statistics.median(floors):9.3f} {self.unit}  ({self.meaning})")


@dataclass(frozen=True)
class Run:
    seconds: float
    max_rss_mb: float
    returncode: int
    output: str


def run(argv: Sequence[str], env: dict[str, str], *, check: bool = True,
        cwd: Path = REPO) -> Run:
    """Run a process to its end: wall seconds and its own peak RSS.

    The RSS comes from GNU ``time`` (a small parent): a child forked from this big
    process would count this process's pages as its own until it execs."""
    with tempfile.NamedTemporaryFile() as rss, tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        done = subprocess.run([TIME, "-f", "%M", "-o", rss.name, *argv], stdout=out,
                              stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL,
                              check=False, cwd=cwd)
        seconds = time.perf_counter() - started
        out.seek(0)
        text = out.read().decode(errors="replace")
        kilobytes = Path(rss.name).read_text().strip().splitlines()[-1]
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {text[-2000:]}")
    return Run(seconds, int(kilobytes) / 1024, done.returncode, text)


# --- a request-counting proxy in front of the daemon's socket -------------------------------



class CountingProxy:
    """A unix socket relaying to the daemon's, counting the HTTP requests sent through it."""

    def __init__(self, upstream: Path, path: Path) -> None:
        self.upstream, self.path = str(upstream), path
        self.requests: Counter[str] = Counter()
        self.sent: list[tuple[float, str, int]] = []
        """(perf_counter when seen, kind, connection number) of every request, in order."""
        self._numbers = itertools.count()
        """Numbers the connections in the order they are accepted."""
        self.answered: dict[int, list[float]] = {}
        """Connection number -> when each chunk of the daemon's answers was relayed."""
        self._lock = threading.Lock()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._server.close()

    def total(self) -> int:
        return sum(self.requests.values())

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.upstream)
            number = next(self._numbers)
            threading.Thread(target=self._pipe, args=(client, upstream, True, number),
                             daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False, number),
                             daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, count: bool, number: int) -> None:
        """Relay ``src`` to ``dst``; with ``count``, count the request lines, each once: the
        last bytes of the chunk before are searched again (a line split across two
        chunks), and a line found wholly inside them was counted with that chunk."""
        tail = b""
        try:
            while chunk := src.recv(1 << 16):
                if count:
                    data = tail + chunk
                    with self._lock:
                        for m in REQUEST_LINE.finditer(data):
                            if m.end() <= len(tail):
                                continue
                            path = m[2].decode().split("?")[0]
                            kind = re.sub(r"/[0-9a-f]{64}|/operations/[^/]+", "/X", path)
                            self.requests[f"{m[1].decode()} {kind}"] += 1
                            self.sent.append((time.perf_counter(), f"{m[1].decode()} {kind}",
                                              number))
                    tail = data[-300:]
                dst.sendall(chunk)
                if not count:
                    self.answered.setdefault(number, []).append(time.perf_counter())
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


# --- the lab --------------------------------------------------------------------------------


class Lab:
    """A daemon, a served tree, the CLI's config: everything on 127.0.0.1, all ours."""

    def __init__(self, work: Path, stack: ExitStack) -> None:
        self.work = work
        self.tls: TLSFiles = make_tls(work / "tls")
        self.bundle = work / "ca-bundle.pem"
        system = SYSTEM_CAS.read_text() if SYSTEM_CAS.exists() else ""
        self.bundle.write_text(system + self.tls.ca_pem)
        (work / "ca.pem").write_text(self.tls.ca_pem)
        self.tree = SimpleStreamsTree(work / "tree")
        self.served: ServedTree = stack.enter_context(serve(self.tree.root, self.tls))
        self.daemon = Incusd(env={"SSL_CERT_FILE": str(self.bundle)})
        stack.callback(self.daemon.stop)
        self.daemon.start()
        self.conf = work / "incus-conf"
        self.conf.mkdir()
        self.incus("remote", "add", "test", self.served.url, "--protocol", "simplestreams",
                   "--public")
        self.filled = 0
        # the package's bytecode, once (an install compiles it; a checkout on first use)
        run([sys.executable, "-m", "compileall", "-q", str(REPO / "reconciler")], self.env())

    def env(self) -> dict[str, str]:
        """The tool's environment: as on a user's machine, bytecode is cached (a sandbox's
        PYTHONDONTWRITEBYTECODE would make every run compile the whole package anew)."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("INCUS_") and k != "PYTHONDONTWRITEBYTECODE"}
        env.update(INCUS_DIR=str(self.daemon.dir), INCUS_CONF=str(self.conf),
                   SSL_CERT_FILE=str(self.bundle), PYTHONPATH=str(REPO))
        return env

    def incus(self, *args: str) -> Run:
        return run([INCUS, *args], self.env())

    def tool(self, *args: str, check: bool = True) -> Run:
        """The tool as a process, allowed a slow daemon (listing 5,000 images takes Incus
        6.0 here over the default 30 s read timeout)."""
        return run([sys.executable, "-m", "reconciler", "--read-timeout", READ_TIMEOUT, *args],
                   self.env(), check=check)

    def write(self, name: str, entries: Sequence[str], *, socket_path: Path | None = None,
              projects: Sequence[str] = ("default",), url: str | None = None,
              owner: str | None = None) -> Path:
        sock = socket_path or self.daemon.socket
        targets = "".join(f"  t-{p}: {{url: \"unix://{sock}\", project: {p}}}\n"
                          for p in projects)
        # each file its own images (no prune), unless it is to share another file's owner
        owner = owner or "bench-" + name.removesuffix(".yaml")
        remote = url or self.served.url
        text = (f"version: 1\nowner: {owner}\nremotes:\n  test: {{url: \"{remote}\", "
                f"certificate: ca.pem}}\ntargets:\n{targets}images:\n"
                + "".join(f"  - {{source: \"test:{e}\", aliases: [{e.replace('/', '-')}]}}\n"
                          for e in entries))
        path = self.work / name
        path.write_text(text)
        return path

    def fill(self, count: int) -> None:
        """Upload unmanaged tiny images until the store holds ``count`` of them."""
        while self.filled < count:
            built = build_unified_image("filler", str(self.filled), "20250101_0000")
            _, _, raw = self.daemon._raw("POST", "/1.0/images", built.metadata,
                                         headers={"Content-Type": "application/octet-stream"})
            operation = json.loads(raw).get("operation") if raw else None
            if operation:  # the import runs on: a backlog of them would slow every figure
                self.daemon._raw("GET", f"{operation}/wait?timeout=60", None, timeout=70.0)
            self.filled += 1

    def delete(self, fingerprints: Sequence[str]) -> None:
        for fp in fingerprints:
            self.daemon.api("DELETE", f"/1.0/images/{fp}", check=False)

    def raw_pull(self, alias: str) -> None:
        self.daemon.api("POST", "/1.0/images", {
            "source": {"type": "image", "mode": "pull", "server": self.served.url,
                       "protocol": "simplestreams", "alias": alias,
                       "certificate": self.tls.ca_pem}})


def big_rootfs(rnd: random.Random, megabytes: int, blocks: list[bytes]) -> bytes:
    """A valid multi-stream ``root.tar.xz`` of random (incompressible) data.

    xz on random data is slow, so a few 1 MiB random blocks are compressed once and each
    image strings a random sequence of them after a stream of its own."""
    head = lzma.compress(rnd.randbytes(4096), format=lzma.FORMAT_XZ, preset=0)
    return head + b"".join(rnd.choice(blocks) for _ in range(megabytes))


# --- the figures ----------------------------------------------------------------------------


def in_process_plan(path: Path) -> float:
    config = load_config(path, os.environ)
    services = system_services()
    started = time.perf_counter()
    with timeouts.using(timeouts.Timeouts(read=float(READ_TIMEOUT))), \
            pipeline.opened_stores(config, services) as stores, services.reader() as reader:
        pipeline.make_plan(config, stores, reader, targets=None, allow_empty=False,
                           now=datetime.now(UTC))
    return time.perf_counter() - started


def list_calls(lab: Lab, project: str = "default") -> float:
    """The floor of a plan: the daemon's own list calls and the remote index, nothing else."""
    context = ssl.create_default_context(cafile=str(lab.work / "ca.pem"))
    started = time.perf_counter()
    lab.daemon.api("GET", "/1.0")
    lab.daemon.api("GET", f"/1.0/images?recursion=1&project={project}",
                   timeout=float(READ_TIMEOUT))
    lab.daemon.api("GET", f"/1.0/images/aliases?recursion=1&project={project}")
    for doc in ("streams/v1/index.json", "streams/v1/images.json"):
        with urllib.request.urlopen(f"{lab.served.url}/{doc}", context=context) as answer:
            answer.read()
    return time.perf_counter() - started


def fig_stores(lab: Lab, sizes: Sizes, repeats: int, plan_entries: list[str] | None,
               apply_entries: list[str] | None) -> Iterator[Figure]:
    """plan-store and apply-store, size by size (a store only grows: each size's figures
    are measured before the next fill)."""
    plan_path = apply_path = None
    if plan_entries is not None:
        plan_path = lab.write("plan-store.yaml", plan_entries)
        lab.tool("apply", "--yes", "-f", str(plan_path))
        in_process_plan(plan_path)  # warm: imports, the daemon's caches
    if apply_entries is not None:
        apply_path = lab.write("apply-store.yaml", apply_entries)
    for size in sizes.stores:
        lab.fill(size)
        if plan_path is not None:
            yield plan_store(lab, size, repeats, plan_path)
        if apply_path is not None and apply_entries is not None:
            yield from apply_store(lab, size, repeats, apply_path, apply_entries)


def plan_store(lab: Lab, size: int, repeats: int, path: Path) -> Figure:
    fig = Figure(f"plan-store {size} images", "plan / list calls + index")
    for _ in range(repeats):
        fig.pairs.append((in_process_plan(path), list_calls(lab)))
    return fig


def fig_plan_index(lab: Lab, sizes: Sizes, repeats: int, stack: ExitStack) -> list[Figure]:
    root = lab.work / "big-index"
    doc = public_like(products=sizes.products)
    (root / "streams" / "v1").mkdir(parents=True)
    products = root / "streams" / "v1" / "images.json"
    products.write_text(json.dumps(doc))
    (root / "streams" / "v1" / "index.json").write_text(json.dumps({"format": "index:1.0",
        "index": {"images": {"datatype": "image-downloads", "path": "streams/v1/images.json",
                             "format": "products:1.0", "products": sorted(doc["products"])}}}))
    served = stack.enter_context(serve(root, lab.tls))
    aliases = [p["aliases"].split(",")[0] for p in doc["products"].values()
               if p["arch"] == "amd64"][::17][:3]
    path = lab.write("plan-index.yaml", aliases, url=served.url)
    megabytes = products.stat().st_size / 1e6
    time_fig = Figure(f"plan-index {megabytes:.0f} MB (time)", "plan / json.load, processes")
    rss_fig = Figure(f"plan-index {megabytes:.0f} MB (peak RSS)", "plan / json.load",
                     unit="MB")
    load = [sys.executable, "-c", "import json, sys; json.load(open(sys.argv[1], 'rb'))",
            str(products)]
    fetch_fig = Figure(f"plan-index {megabytes:.0f} MB (the index)",
                       "fetch + resolve in process / json.loads")
    config = load_config(path, os.environ)
    raw = products.read_bytes()
    for _ in range(repeats):
        plan = lab.tool("plan", "-f", str(path), check=False)
        if plan.returncode not in (0, 2):
            raise RuntimeError(plan.output[-2000:])
        floor = run(load, lab.env())
        time_fig.pairs.append((plan.seconds, floor.seconds))
        rss_fig.pairs.append((plan.max_rss_mb, floor.max_rss_mb))
        fetch_fig.pairs.append((fetch_and_resolve(config), parse_seconds(raw)))
    return [time_fig, rss_fig, fetch_fig]


def fetch_and_resolve(config: Config) -> float:
    """Seconds to read a remote's index (HTTPS, parse, alias table) and resolve the entries."""
    started = time.perf_counter()
    with system_services().reader() as reader:
        for entry in config.entries:
            catalog = reader.fetch_catalog(config.remotes[entry.remote])
            catalog.resolve(entry.remote_alias, entry.type, "x86_64")
    return time.perf_counter() - started


def parse_seconds(raw: bytes) -> float:
    started = time.perf_counter()
    json.loads(raw)
    return time.perf_counter() - started


def fig_plan_targets(lab: Lab, sizes: Sizes, repeats: int, entries: list[str]) -> list[Figure]:
    projects = ["default", *(f"p{n}" for n in range(1, sizes.targets))]
    for p in projects[1:]:
        lab.daemon.api("POST", "/1.0/projects", {"name": p, "config": {"features.images": "true"}},
                       check=False)
    many = lab.write("plan-targets.yaml", entries, projects=projects)
    one = lab.write("plan-target.yaml", entries)
    fig = Figure(f"plan-targets {len(projects)} vs 1", "plan of N targets / of 1")
    for _ in range(repeats):
        fig.pairs.append((in_process_plan(many), in_process_plan(one)))
    return [fig]


def _managed(lab: Lab, names: Sequence[str]) -> list[str]:
    found = lab.daemon.api("GET", "/1.0/images/aliases?recursion=1").metadata
    wanted = {n.replace("/", "-") for n in names}
    return [a["target"] for a in found if a["name"] in wanted]


def _cli_loop(lab: Lab, names: Sequence[str]) -> float:
    started = time.perf_counter()
    for name in names:
        lab.incus("image", "copy", f"test:{name}", "local:", "--alias", name.replace("/", "-"))
    return time.perf_counter() - started


def apply_store(lab: Lab, size: int, repeats: int, path: Path, two: list[str]
                ) -> Iterator[Figure]:
    """(apply - plan) against the goal's bound; and, since the daemon's list of a large
    store varies by seconds from one call to the next (which that difference cannot
    tell from apply's own work), apply's time after its observation's image list was
    answered (read off a proxy: apply lists the images once, to observe), against the
    same bound."""
    fig = Figure(f"apply-store 2 into {size} images",
                 "(apply - plan) / the goal's bound, max(1 s, 2 x incus image copy of the two)")
    own = Figure(f"apply-store 2 into {size}: after list",
                 "apply after its image list was answered / the same bound")
    proxy = CountingProxy(lab.daemon.socket, lab.work / f"store-{size}.socket")
    proxied = lab.write(f"apply-store-{size}.yaml", two, socket_path=proxy.path,
                        owner="bench-" + path.name.removesuffix(".yaml"))  # plan's owner
    try:
        for _ in range(repeats):
            lab.delete(_managed(lab, two))
            plan = lab.tool("plan", "-f", str(path), "--detailed-exitcode", check=False)
            if plan.returncode != 2:
                raise RuntimeError(f"plan exited {plan.returncode}: {plan.output[-2000:]}")
            proxy.sent.clear()
            proxy.answered.clear()
            apply = lab.tool("apply", "--yes", "-f", str(proxied))
            ended = time.perf_counter()
            lab.delete(_managed(lab, two))
            bound = max(1.0, 2 * _cli_loop(lab, two))
            fig.pairs.append((apply.seconds - plan.seconds, bound))
            own.pairs.append((ended - _after_first_list(proxy), bound))
            lab.delete(_managed(lab, two))
    finally:
        proxy.close()
    yield fig
    yield own


def _after_first_list(proxy: CountingProxy) -> float:
    """When the first image list (the observation's) was answered: the daemon's last
    chunk on its connection before that connection's next request (a connection
    carries one request at a time; other connections, such as the lease's renewals,
    go on meanwhile)."""
    sent = proxy.sent
    first = min(i for i, (_, kind, _) in enumerate(sent) if kind == "GET /1.0/images")
    asked, _, conn = sent[first]
    following = [t for t, _, c in sent[first + 1:] if c == conn]
    until = following[0] if following else float("inf")
    return max(t for t in proxy.answered[conn] if asked <= t < until)


def fig_requests(lab: Lab, names: list[str]) -> list[Figure]:
    """Requests to the daemon per download: the slope between applies of half and all of
    ``names`` (the goal: at most 4 per download plus a constant per target), and the
    average over an apply that has nothing to do."""
    proxy = CountingProxy(lab.daemon.socket, lab.work / "proxy.socket")
    counts: dict[int, Counter[str]] = {}
    try:
        for size in (len(names) // 2, len(names)):
            path = lab.write(f"requests-{size}.yaml", names[:size], socket_path=proxy.path,
                             owner="bench-requests")
            lab.delete(_managed(lab, names))
            proxy.requests.clear()
            lab.tool("apply", "--yes", "-f", str(path))
            counts[size] = Counter(proxy.requests)
        proxy.requests.clear()
        lab.tool("apply", "--yes", "-f", str(path))  # nothing to change: the constant
        constant = Counter(proxy.requests)
    finally:
        proxy.close()
        lab.delete(_managed(lab, names))
    half, whole = sorted(counts)
    total = {size: sum(c.values()) for size, c in counts.items()}
    slope = (total[whole] - total[half]) / (whole - half)
    average = (total[whole] - sum(constant.values())) / whole
    top = ", ".join(f"{k} {v}" for k, v in counts[whole].most_common(5))
    fig = Figure(f"requests ({half} and {whole} tiny)",
                 f"each further download; all in: {average:.2f} per download over the "
                 f"{sum(constant.values())} of a run with nothing to do; {whole}: "
                 f"{total[whole]} in all, top: {top}", unit="req")
    fig.pairs.append((slope, 1.0))
    return [fig]


def fig_apply_many(lab: Lab, repeats: int, names: list[str], label: str,
                   raw: bool) -> list[Figure]:
    path = lab.write(f"{label}.yaml", names)
    loop = Figure(f"{label} {len(names)} images vs CLI loop", "apply / incus image copy loop")
    best = Figure(f"{label} {len(names)} images vs raw pulls",
                  "apply / best of 2 and 3 raw pulls at once")
    work = Figure(f"{label} {len(names)}: apply - plan vs raw",
                  "breakdown: (apply - a plan process) / best raw pulls")
    for _ in range(repeats):
        lab.delete(_managed(lab, names))
        plan = lab.tool("plan", "-f", str(path))
        apply = lab.tool("apply", "--yes", "-f", str(path))
        lab.delete(_managed(lab, names))
        cli = _cli_loop(lab, names)
        lab.delete(_managed(lab, names))
        loop.pairs.append((apply.seconds, cli))
        if raw:
            times = []
            for width in (2, 3):
                started = time.perf_counter()
                with ThreadPoolExecutor(max_workers=width) as pool:
                    list(pool.map(lab.raw_pull, names))
                times.append(time.perf_counter() - started)
                lab.delete([img["fingerprint"] for img in lab.daemon.api(
                    "GET", "/1.0/images?recursion=1").metadata
                    if img.get("properties", {}).get("os") in {n.split("/")[0] for n in names}])
            best.pairs.append((apply.seconds, min(times)))
            work.pairs.append((apply.seconds - plan.seconds, min(times)))
    return [loop, best, work] if raw else [loop]


# --- main -----------------------------------------------------------------------------------


@contextmanager
def lab_in(work: Path) -> Iterator[tuple[Lab, ExitStack]]:
    with ExitStack() as stack:
        yield Lab(work, stack), stack


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=FIGURES,
                        help="measure only this figure (repeatable)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats per figure (default 5)")
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the script")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    only = set(args.only or FIGURES)
    if not Path(INCUS).exists() or not Path(TIME).exists() or not shutil.which("openssl"):
        print(f"needs {INCUS}, {TIME} (GNU time) and openssl", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="incus-images-bench-"))
    figures: list[Figure] = []
    try:
        with lab_in(work) as (lab, stack):
            figures += measure(lab, stack, sizes, max(1, args.repeats), only)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'figure':<34} {'ratio':>7} [spread]  median value vs median floor")
    for fig in figures:
        print(fig.line())
    return 0


def measure(lab: Lab, stack: ExitStack, sizes: Sizes, repeats: int, only: set[str]
            ) -> list[Figure]:
    rnd = random.Random(10)

    def tiny(prefix: str, count: int) -> list[str]:
        """``count`` tiny builds of their own (two owners may not share an image)."""
        names = [f"{prefix}{n}/1.0" for n in range(count)]
        for name in names:
            lab.tree.add(name.split("/")[0], "1.0", "20260101_0000")
        return names

    # Every build is published before anything reads the tree: the daemon and the CLI
    # cache an index they have read.
    ps, pt, as_, rq, at = (tiny("ps", 2), tiny("pt", 2), tiny("as", 2), tiny("rq", sizes.tiny),
                           tiny("at", sizes.tiny))
    # The store figures fill the daemon's store with thousands of images, and it only
    # grows: they come last, or every other figure would observe that store too.
    # plan-targets times plans inside this process: it comes before plan-index, whose
    # in-process reads of a 17 MB index leave this process's heap large (measured: the
    # 10-target plan 0.145 s on its own, 0.172 s right after plan-index).
    steps: list[tuple[str, Callable[[], Iterable[Figure]]]] = [
        ("plan-targets", lambda: fig_plan_targets(lab, sizes, repeats, pt)),
        ("plan-index", lambda: fig_plan_index(lab, sizes, repeats, stack)),
        ("requests", lambda: fig_requests(lab, rq)),
        ("apply-tiny", lambda: fig_apply_many(lab, repeats, at, "apply-tiny", raw=False)),
    ]
    if "apply-big" in only:
        blocks = [lzma.compress(rnd.randbytes(1 << 20), format=lzma.FORMAT_XZ, preset=0)
                  for _ in range(6)]
        big = [f"big{n}/1.0" for n in range(sizes.big)]
        for name in big:
            size = rnd.randint(*sizes.big_mb)
            lab.tree.add(name.split("/")[0], "1.0", "20260101_0000",
                         rootfs=big_rootfs(rnd, size, blocks))
        steps.append(("apply-big", lambda: fig_apply_many(lab, repeats, big, "apply-big",
                                                          raw=True)))
    steps += [
        ("plan-store", lambda: fig_stores(
            lab, sizes, repeats, ps, as_ if "apply-store" in only else None)),
        ("apply-store", lambda: fig_stores(lab, sizes, repeats, None, as_)),
    ]
    figures: list[Figure] = []
    for name, step in steps:
        if name == "apply-store" and "plan-store" in only:
            continue  # measured with plan-store, size by size
        if name in only:
            print(f"measuring {name} ...", file=sys.stderr, flush=True)
            for fig in step():  # shown at once too: a later failure does not lose them
                print(f"  {fig.line()}", file=sys.stderr, flush=True)
                figures.append(fig)
    return figures


if __name__ == "__main__":
    sys.exit(main())
