"""Golden outputs: what the commands print and write, byte for byte, for a spread of scenarios.

Captured before the redesign of issue 8 so that it can be checked to change no
output: after the redesign every file under ``tests/golden/data/`` must still match,
byte for byte, except where a bug is fixed on purpose (then regenerate, and say so
in the commit).

Each scenario builds a world (``images.yaml`` in a temporary directory, remotes
served by the in-memory reader, targets that are in-memory stores, set up by hand
and/or by a real ``apply``), then runs the real CLI (see ``harness.py``: the only
module that imports the code under test) and keeps, as
``data/<scenario>.<output>``:

* ``plan.json``, ``plan.md``, ``plan.txt``: ``plan --format json|markdown|text``;
* ``saved.json``: the bytes ``plan --out`` wrote; ``show.txt``, ``show.md``,
  ``show.json``: ``show`` of that file;
* ``status.json``, ``status.txt``: ``status`` (where the scenario has them);
* ``apply.txt``, ``after.plan.txt``, ``after.status.txt``: ``apply`` (``--yes``, or
  of the saved plan), then ``plan`` and ``status`` again (where the scenario applies);
* scenario-specific extras (a lock file, ``plan --target``, ...);
* ``log.txt``: every command run, setup included, with its exit status, its stderr,
  and its stdout when no other file keeps it.

An output that is empty is not written; the set of files of a scenario is checked
too (a new or a vanished output fails).  Plans are made at the fixed clock
``harness.CLOCK`` (2026-11-27 12:00 UTC), never today's date.

Regenerate after an intended change (then review ``git diff tests/golden/data``)::

    GOLDEN_UPDATE=1 python -m pytest -q tests/golden

Scenarios: see :data:`SCENARIOS` (one function each below, its docstring says what
it shows).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.golden.harness import (
    RecordedImage,
    UpdateSource,
    World,
    at,
    build,
    image,
    install,
)

DATA = Path(__file__).parent / "data"
UPDATE = os.environ.get("GOLDEN_UPDATE") == "1"
SAVED = "plan.saved.json"

HEAD = """\
version: 1
remotes:
  images:
    url: https://images.test
"""

DEB1, DEB2 = build("debian/12", 301), build("debian/12", 310)
ALP1, ALP2 = build("alpine/3.20", 10), build("alpine/3.20", 320)
UBU1 = build("ubuntu/24.04", 305)
ALPVM = build("alpine/3.20", 315, type_="virtual-machine")
HAND = "f" * 64
"""An image imported by hand: nobody manages it."""


# -- the scenarios ----------------------------------------------------------------------

@dataclass(frozen=True)
class Scenario:
    name: str
    setup: Callable[[World], None]
    status: bool = True
    apply: str | None = None
    """None: no apply; "yes": ``apply --yes``; "json": ``apply --yes --format json``;
    "saved": ``apply`` of the saved plan."""
    after: Callable[[World], None] | None = None


SCENARIOS: list[Scenario] = []


def scenario(name: str, *, status: bool = True, apply: str | None = None,
             after: Callable[[World], None] | None = None
             ) -> Callable[[Callable[[World], None]], Callable[[World], None]]:
    def register(fn: Callable[[World], None]) -> Callable[[World], None]:
        SCENARIOS.append(Scenario(name, fn, status=status, apply=apply, after=after))
        return fn
    return register


def converge(w: World, yaml: str) -> None:
    """Apply ``yaml`` for real (setup), then check that nothing is left to do."""
    w.write(yaml)
    assert w.run("apply", "--yes").code == 0, w.transcript[-1].err
    ran = w.run("plan", "--detailed-exitcode")
    assert ran.code == 0, ran.out


FIRST = HEAD + """\
images:
  - source: images:debian/12
    aliases:
      - debian-12
      - name: debian/bookworm
        description: Debian 12, kept fresh from the image server
    auto_update: true
    properties: {team: web}
  - source: images:alpine/3.20
    type: virtual-machine
    aliases: [alpine-vm]
"""


@scenario("first-download", apply="yes")
def first_download(w: World) -> None:
    """An empty store: download a container and a VM image, create three aliases."""
    w.publish("images", DEB1, DEB2, ALP1, ALPVM)
    w.store()
    w.write(FIRST)


def offline_status(w: World) -> None:
    for fmt, name in (("text", "offline.status.txt"), ("json", "offline.status.json")):
        ran = w.run("status", "--offline", "--format", fmt)
        w.keep(name, ran.out, ran)


@scenario("no-changes", after=offline_status)
def no_changes(w: World) -> None:
    """Everything applied already: the plan is empty (an empty saved plan too).  After:
    ``status --offline`` (updates unknown)."""
    w.publish("images", DEB2, ALPVM)
    w.store()
    converge(w, FIRST)


@scenario("new-upstream-build", apply="saved")
def new_upstream_build(w: World) -> None:
    """A newer build upstream: download it, move both aliases, delete the old one."""
    w.publish("images", DEB1)
    w.store()
    converge(w, HEAD + """\
images:
  - source: images:debian/12
    aliases: [debian-12, debian]
""")
    w.publish("images", DEB2)


@scenario("expiry-absolute", apply="yes")
def expiry_absolute(w: World) -> None:
    """expires_at: a future one written, a past one deletes, a dropped one cleared, an
    entry already expired never downloaded."""
    w.publish("images", DEB2, ALP2, UBU1, build("fedora/40", 200))
    w.store()
    converge(w, HEAD + """\
images:
  - source: images:debian/12
    aliases: [deb]
  - source: images:alpine/3.20
    aliases: [alp]
  - source: images:ubuntu/24.04
    aliases: [ubu]
    expires_at: 2027-01-01
""")
    w.write(HEAD + """\
images:
  - source: images:debian/12
    aliases: [deb]
    expires_at: 2027-06-30
  - source: images:alpine/3.20
    aliases: [alp]
    expires_at: 2026-11-01T08:00:00Z
  - source: images:ubuntu/24.04
    aliases: [ubu]
  - source: images:fedora/40
    aliases: [fedora]
    expires_at: 2026-10-01
""")


@scenario("expiry-relative", apply="yes")
def expiry_relative(w: World) -> None:
    """expires_after (from defaults and per entry), counted from each build's date:
    written where still ahead, an expired build deleted, a new download with expiry."""
    old_alpine = build("alpine/3.20", 10)
    w.publish("images", DEB2, old_alpine, build("ubuntu/24.04", 325))
    w.store()
    converge(w, HEAD + """\
images:
  - source: images:debian/12
    aliases: [deb]
  - source: images:alpine/3.20
    aliases: [alp]
""")
    w.write(HEAD + """\
defaults:
  expires_after: 90d
images:
  - source: images:debian/12
    aliases: [deb]
  - source: images:alpine/3.20
    aliases: [alp]
  - source: images:ubuntu/24.04
    aliases: [ubu]
    expires_after: 400d
""")


AUTO = HEAD + """\
images:
  - source: images:debian/12
    aliases: [debian-12]
    auto_update: true
    properties: {team: web}
  - source: images:alpine/3.20
    aliases: [alpine]
    auto_update: true
"""


@scenario("auto-update", apply="yes")
def auto_update(w: World) -> None:
    """The daemon auto-updated debian (new fingerprint, its properties replaced): not drift,
    the properties are restored; an alpine build nobody manages, with no recorded source,
    is adopted (warning auto_update.no_source)."""
    w.publish("images", DEB1)
    store = w.store()
    converge(w, HEAD + """\
images:
  - source: images:debian/12
    aliases: [debian-12]
    auto_update: true
    properties: {team: web}
""")
    w.publish("images", DEB2, ALP2)
    old = store.images.pop(DEB1.fingerprint)
    store.images[DEB2.fingerprint] = old.model_copy(update={
        "fingerprint": DEB2.fingerprint, "properties": dict(DEB2.properties),
        "created_at": DEB2.created_at, "size": DEB2.size})
    store.aliases["debian-12"] = (DEB2.fingerprint, "")
    store.put(image(ALP2.fingerprint, architecture="x86_64", size=ALP2.size,
                    created_at=ALP2.created_at, properties=dict(ALP2.properties)))
    w.write(AUTO)


@scenario("field-updates", apply="json")
def field_updates(w: World) -> None:
    """Writable fields: public, profiles, auto_update, a property changed and one dropped;
    an alias's description set, one alias added and one no longer declared."""
    w.publish("images", DEB2)
    store = w.store()
    store.profiles["web"] = store.profiles["default"].model_copy(update={"name": "web"})
    converge(w, HEAD + """\
images:
  - source: images:debian/12
    aliases: [deb, old-name]
    auto_update: true
    properties: {team: web, tier: gold}
""")
    w.write(HEAD + """\
images:
  - source: images:debian/12
    aliases:
      - name: deb
        description: the team's Debian
      - debian
    public: true
    profiles: [default, web]
    properties: {team: platform}
""")


CONFLICT = """\
images:
  - source: images:debian/12
    aliases: [debian-12, debian]
  - source: images:alpine/3.20
    aliases: [alpine]
"""


def hand_imported(w: World) -> None:
    w.publish("images", DEB2, ALP2)
    store = w.store()
    store.put(image(HAND, architecture="x86_64", size=4321, properties={"os": "mine"}),
              "debian-12", "alpine", "by-hand")


@scenario("alias-conflict-fail")
def alias_conflict_fail(w: World) -> None:
    """Two declared aliases held by a hand-imported image: the plan fails, naming both."""
    hand_imported(w)
    w.write(HEAD + CONFLICT)


@scenario("alias-conflict-take", apply="yes")
def alias_conflict_take(w: World) -> None:
    """The same with policy.alias_conflicts: take: the aliases move, the image stays."""
    hand_imported(w)
    w.write(HEAD + "policy:\n  alias_conflicts: take\n" + CONFLICT)


OTHER_OWNER = RecordedImage(source="images:ubuntu/24.04", architecture="x86_64",
                            aliases=("ubuntu",))


def two_owner_store(w: World) -> None:
    w.publish("images", DEB2, UBU1)
    store = w.store()
    store.put(image(UBU1.fingerprint, architecture="x86_64", size=UBU1.size, auto_update=True,
                    created_at=UBU1.created_at, properties=dict(UBU1.properties),
                    update_source=UpdateSource(server="https://images.test",
                                               protocol="simplestreams", alias="ubuntu/24.04")),
              "ubuntu")
    store.config["images.auto_update_interval"] = "6"
    w.record("local", "web", {UBU1.fingerprint: OTHER_OWNER},
             server={"images.auto_update_interval": "6"})


@scenario("two-owners", apply="yes")
def two_owners(w: World) -> None:
    """Owner platform shares the store with owner web: web's image is left alone, the
    server setting both declare agrees."""
    two_owner_store(w)
    w.write(HEAD.replace("version: 1\n", "version: 1\nowner: platform\n") + """\
server:
  images.auto_update_interval: 6
images:
  - source: images:debian/12
    aliases: [debian-12]
""")


@scenario("two-owners-conflict")
def two_owners_conflict(w: World) -> None:
    """Owner platform declares web's image, web's alias and another server value: every
    conflict is reported, nothing is planned."""
    two_owner_store(w)
    w.write(HEAD.replace("version: 1\n", "version: 1\nowner: platform\n") + """\
server:
  images.auto_update_interval: 12
images:
  - source: images:ubuntu/24.04
    aliases: [noble]
  - source: images:debian/12
    aliases: [ubuntu]
""")


@scenario("policy-cached", apply="yes")
def policy_cached(w: World) -> None:
    """policy.cached delete_unused_after: 30d: daemon-cached images unused that long are
    deleted, a recent one stays; a cached copy of a declared build is deleted and pulled."""
    w.publish("images", DEB2)
    store = w.store()
    src = UpdateSource(server="https://elsewhere.test", protocol="simplestreams",
                       alias="alpine/edge")
    store.put(image("c1" * 32, cached=True, architecture="x86_64", size=500, update_source=src,
                    last_used_at=at(2026, 10, 1, 9, 30), uploaded_at=at(2026, 9, 1)), "stale")
    store.put(image("c2" * 32, cached=True, architecture="x86_64", size=600,
                    last_used_at=at(2026, 11, 20), uploaded_at=at(2026, 9, 1)))
    store.put(image("c3" * 32, cached=True, architecture="x86_64", size=700,
                    uploaded_at=at(2026, 9, 1)))
    store.put(image(DEB2.fingerprint, cached=True, architecture="x86_64", size=DEB2.size,
                    created_at=DEB2.created_at, last_used_at=at(2026, 11, 26)), "debian-12")
    w.write(HEAD + """\
policy:
  cached: {delete_unused_after: 30d}
images:
  - source: images:debian/12
    aliases: [debian-12]
""")


@scenario("pinned", apply="saved")
def pinned(w: World) -> None:
    """Fingerprint pins: alpine pinned to an older build (pulled by fingerprint, never
    moved); debian pinned to a build already in the store that nobody manages (adopted)."""
    w.publish("images", DEB1, DEB2, ALP1, ALP2)
    store = w.store()
    store.put(image(DEB1.fingerprint, architecture="x86_64", size=DEB1.size,
                    created_at=DEB1.created_at, properties=dict(DEB1.properties)), "debian-old")
    w.write(HEAD + f"""\
images:
  - source: images:alpine/3.20
    fingerprint: {ALP1.fingerprint}
    aliases:
      - name: alpine-pinned
        description: the build CI certified
  - source: images:debian/12
    architecture: amd64
    fingerprint: {DEB1.fingerprint}
    aliases: [debian-pinned]
""")


LOCKED = HEAD + """\
images:
  - source: images:debian/12
    aliases: [debian-12]
  - source: images:alpine/3.20
    aliases: [alpine]
"""


def lock_after(w: World) -> None:
    ran = w.run("lock", "--upgrade", "images:debian/12")
    w.keep("lock-upgrade.txt", ran.out, ran)
    w.keep("lock-upgraded.yaml", w.read("images.lock.yaml").decode())
    w.keep("lock-upgraded.plan.txt", w.run("plan").out, w.transcript[-1])


@scenario("lock-file", apply="yes", after=lock_after)
def lock_file(w: World) -> None:
    """A lock file (written by ``lock``) holds debian and alpine at the builds of the day
    although newer ones appeared upstream; ubuntu, added after the lock, warns lock.missing.
    After: ``lock --upgrade images:debian/12`` moves debian only."""
    w.publish("images", DEB1, ALP1)
    w.store()
    w.write(LOCKED)
    ran = w.run("lock")
    w.keep("lock.txt", ran.out, ran)
    w.keep("lock.yaml", w.read("images.lock.yaml").decode())
    w.publish("images", DEB2, ALP2, UBU1)
    w.write(LOCKED + "  - source: images:ubuntu/24.04\n    aliases: [ubuntu]\n")


PRUNE_BEFORE = HEAD + """\
images:
  - source: images:debian/12
    aliases: [deb]
  - source: images:alpine/3.20
    aliases: [alp]
  - source: images:ubuntu/24.04
    aliases: [ubu]
"""
PRUNE_AFTER = HEAD + """\
images:
  - source: images:debian/12
    aliases: [deb]
"""


def prune_world(w: World) -> None:
    w.publish("images", DEB2, ALP2, UBU1)
    store = w.store()
    store.put(image(HAND, architecture="x86_64", size=4321), "by-hand")
    converge(w, PRUNE_BEFORE)
    store.instances[ALP2.fingerprint] = ("web1", "web2")
    store.aliases["added-by-hand"] = (DEB2.fingerprint, "")


@scenario("prune", apply="yes")
def prune(w: World) -> None:
    """Two entries dropped: their images are deleted (one still used by two instances);
    the hand-imported image and an alias added by hand to a managed image stay."""
    prune_world(w)
    w.write(PRUNE_AFTER)


@scenario("prune-false", status=False)
def prune_false(w: World) -> None:
    """The same with policy.prune: false: nothing is deleted."""
    prune_world(w)
    w.write(PRUNE_AFTER.replace("images:\n  - source", "policy:\n  prune: false\nimages:\n"
                                "  - source", 1))


@scenario("empty-file", status=False,
          after=lambda w: w.keep("allow-empty.plan.txt", w.run("plan", "--allow-empty").out,
                                 w.transcript[-1]))
def empty_file(w: World) -> None:
    """A file with no images while the owner manages one: refused; --allow-empty plans
    the deletion."""
    w.publish("images", DEB2)
    w.store()
    converge(w, PRUNE_AFTER)
    w.write(HEAD + "images: []\n")


@scenario("warnings-notes", apply="yes")
def warnings_notes(w: World) -> None:
    """Warnings (requirements.nesting, requirements.secureboot, storage.space), a note
    (cgroup v1 cannot be checked) and a server setting to change."""
    nest = build("nest/1", 330, requirements={"nesting": "true"})
    cg = build("centos/7", 331, requirements={"cgroup": "v1"})
    vm = build("win/11", 332, type_="virtual-machine", requirements={"secureboot": "false"})
    w.publish("images", nest, cg, vm)
    store = w.store()
    store.images_free_bytes = 2000
    w.write(HEAD + """\
server:
  images.auto_update_interval: 12
  images.remote_cache_expiry: 5
images:
  - source: images:nest/1
    aliases: [nest]
  - source: images:centos/7
    aliases: [centos]
  - source: images:win/11
    type: virtual-machine
    aliases: [win]
""")


@scenario("multiple-targets", apply="yes")
def multiple_targets(w: World) -> None:
    """Two targets (local, and prod in project web): debian on both, one build behind;
    alpine only on prod, ubuntu only on local.  Also ``plan --target prod`` (text, json)."""
    w.publish("images", DEB1, ALP2, UBU1)
    w.store()
    w.store("prod", project="web")
    two = HEAD + """\
targets:
  local: {}
  prod:
    url: unix:///run/prod/incus/unix.socket
    project: web
images:
  - source: images:debian/12
    aliases: [debian-12]
"""
    converge(w, two)
    w.publish("images", DEB2)
    w.write(two + """\
  - source: images:alpine/3.20
    aliases: [alpine]
    targets: [prod]
  - source: images:ubuntu/24.04
    aliases: [ubuntu]
    targets: [local]
""")
    for fmt, name in (("text", "target-prod.plan.txt"), ("json", "target-prod.plan.json")):
        ran = w.run("plan", "--target", "prod", "--format", fmt)
        w.keep(name, ran.out, ran)


def dirty_plan(w: World) -> None:
    w.write(HEAD + "images:\n  - source: images:debian/12\n    aliases: [debian-12, deb]\n")
    w.run("plan", "--out", "dirty.json")
    ran = w.run("show", "dirty.json")
    w.keep("dirty.show.txt", ran.out, ran)


@scenario("provenance", apply="saved", after=dirty_plan)
def provenance(w: World) -> None:
    """The file lives in a git repository (origin with credentials, which never show): the
    saved plan, ``show`` and the records apply writes name the commit.  After: the file is
    edited without a commit, and the next saved plan says so."""
    w.publish("images", DEB2)
    w.store()
    w.write(HEAD + "images:\n  - source: images:debian/12\n    aliases: [debian-12]\n")
    w.git_commit("images.yaml", origin="https://ci-bot:s3cret@git.example.test/ops/images.git")


def go_stale(w: World) -> None:
    """Someone moves an alias by hand after the plan was saved: applying it is refused."""
    w.stores["local"].aliases["debian"] = (HAND, "")
    w.run("apply", SAVED)
    w.write(HEAD + "images:\n  - source: images:debian/12\n    aliases: [debian]\n")
    w.run("apply", SAVED)
    ran = w.run("status")
    w.keep("stale.status.txt", ran.out, ran)


@scenario("stale-saved-plan", after=go_stale)
def stale_saved_plan(w: World) -> None:
    """A saved plan that no longer holds.  After: an alias it relies on is created by hand
    (refused, stale, nothing changed), then the file changes (refused, stale)."""
    w.publish("images", DEB2)
    store = w.store()
    store.put(image(HAND, architecture="x86_64", size=4321))
    w.write(HEAD + "images:\n  - source: images:debian/12\n    aliases: [debian-12, debian]\n")


# -- running a scenario -----------------------------------------------------------------

def run_scenario(w: World, sc: Scenario) -> None:
    """The standard sequence of commands (see the module docstring)."""
    sc.setup(w)
    for fmt, name in (("json", "plan.json"), ("markdown", "plan.md")):
        ran = w.run("plan", "--format", fmt)
        w.keep(name, ran.out, ran)
    ran = w.run("plan", "--out", SAVED)
    w.keep("plan.txt", ran.out, ran)
    if w.exists(SAVED):
        w.keep("saved.json", w.read(SAVED).decode())
        for fmt, name in (("text", "show.txt"), ("markdown", "show.md"), ("json", "show.json")):
            ran = w.run("show", SAVED, "--format", fmt)
            w.keep(name, ran.out, ran)
    if sc.status:
        ran = w.run("status", "--format", "json")
        w.keep("status.json", ran.out, ran)
        ran = w.run("status")
        w.keep("status.txt", ran.out, ran)
    if sc.apply is not None:
        if sc.apply == "json":
            ran = w.run("apply", "--yes", "--format", "json")
            w.keep("apply.json", ran.out, ran)
        else:
            ran = w.run("apply", "--yes") if sc.apply == "yes" else w.run("apply", SAVED)
            w.keep("apply.txt", ran.out, ran)
        ran = w.run("plan")
        w.keep("after.plan.txt", ran.out, ran)
        ran = w.run("status")
        w.keep("after.status.txt", ran.out, ran)
    if sc.after is not None:
        sc.after(w)
    w.keep("log.txt", w.log())


def check(name: str, outputs: dict[str, str]) -> None:
    """Compare ``outputs`` with ``data/<name>.*`` byte for byte (or rewrite them)."""
    produced = {f"{name}.{key}": text for key, text in outputs.items() if text}
    existing = {p.name for p in DATA.glob(f"{name}.*")}
    if UPDATE:
        DATA.mkdir(exist_ok=True)
        for gone in existing - set(produced):
            (DATA / gone).unlink()
        for file, text in produced.items():
            path = DATA / file
            if not path.exists() or path.read_bytes() != text.encode():
                path.write_bytes(text.encode())
        return
    problems: list[str] = []
    for file in sorted(set(produced) - existing):
        problems.append(f"new output {file} (no golden file; GOLDEN_UPDATE=1 writes it)")
    for file in sorted(existing - set(produced)):
        problems.append(f"output {file} is no longer produced")
    for file in sorted(set(produced) & existing):
        want = (DATA / file).read_bytes().decode()
        got = produced[file]
        if want != got:
            diff = "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True),
                                                f"golden/{file}", "now"))
            problems.append(f"{file} differs:\n{diff}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_golden(sc: Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "work"
    root.mkdir()
    w = World(root=root, capsys=capsys)
    install(monkeypatch, w)
    run_scenario(w, sc)
    check(sc.name, w.outputs)


def test_every_golden_file_belongs_to_a_scenario() -> None:
    names = {s.name for s in SCENARIOS}
    assert len(names) == len(SCENARIOS)
    orphans = sorted(p.name for p in DATA.iterdir()
                     if not any(p.name.startswith(n + ".") for n in names))
    assert not orphans, f"golden files of no scenario: {orphans}"
