"""The lock file: model, deterministic text, resolution, and ``lock`` against fakes."""

from __future__ import annotations

import os
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from reconciler.adapters import lockfile
from reconciler.adapters.lockfile import LockFileError, lock_path, parse, render
from reconciler.core import lock
from reconciler.core.lock import resolve
from reconciler.errors import IncusImagesError, PlanError
from reconciler.model import schemas
from reconciler.model.config import Config, TargetSpec
from reconciler.model.lock import LockedBuild, LockFile, LockKey, Locks
from reconciler.model.remote import RemoteImage
from reconciler.pipeline import run_lock
from reconciler.ports import ImageStore
from reconciler.render.lock import render_outcome
from tests.support.builders import build, catalog, config, entry
from tests.support.fakes import FakeReader, FakeStore


def lb(b: RemoteImage) -> LockedBuild:
    return LockedBuild(fingerprint=b.fingerprint, version=b.version, size=b.size)


def sample() -> Locks:
    b1, b2 = build("deb/1", 1), build("alp/3", 4, arch="aarch64")
    return {
        LockKey("prod", "r:deb/1", "container", "x86_64"): lb(b1),
        LockKey("local", "r:deb/1", "container", "x86_64"): lb(b1),
        LockKey("local", "r:alp/3", "container", "aarch64"): lb(b2),
    }


def test_lock_path_is_stem_plus_lock_yaml() -> None:
    assert lock_path("images.yaml") == Path("images.lock.yaml")
    assert lock_path("/srv/repo/web.yml") == Path("/srv/repo/web.lock.yaml")
    assert lock_path(Path("conf/prod.images.yaml")) == Path("conf/prod.images.lock.yaml")


def test_render_is_deterministic_whatever_the_insertion_order() -> None:
    locks = sample()
    forward = render(LockFile.of(locks))
    backward = render(LockFile.of(dict(reversed(list(locks.items())))))
    assert forward == backward
    sources = [line.split(": ", 1)[1] for line in forward.splitlines()
               if line.startswith("  - source:")]
    assert sources == ['"r:alp/3"', '"r:deb/1"', '"r:deb/1"']
    assert forward.index('target: "local"') < forward.rindex('target: "prod"')


def test_render_has_no_timestamp_and_round_trips() -> None:
    lock = LockFile.of(sample())
    text = render(lock)
    assert "20" not in text.split("version: 1", 1)[0]  # the header carries no date
    assert parse(text, name="x") == lock
    assert parse(text, name="x").locks() == sample()


def test_rendered_lock_satisfies_the_schema_and_plain_yaml_readers() -> None:
    data = YAML(typ="safe", pure=True).load(render(LockFile.of(sample())))
    jsonschema.validate(data, schemas.lock_schema())
    assert all(isinstance(i["version"], str) for i in data["images"])  # never an int
    empty = YAML(typ="safe", pure=True).load(render(LockFile()))
    jsonschema.validate(empty, schemas.lock_schema())
    assert empty == {"version": 1, "images": []}


def test_parse_rejects_garbage_and_duplicates_with_the_file_name() -> None:
    with pytest.raises(LockFileError, match=r"^images.lock.yaml: invalid lock file at version"):
        parse("version: 2\nimages: []\n", name="images.lock.yaml")
    with pytest.raises(LockFileError, match="not a YAML document"):
        parse("images: [\n", name="images.lock.yaml")
    one = render(LockFile.of(dict([next(iter(sample().items()))])))
    item = one.split("images:\n", 1)[1]
    with pytest.raises(LockFileError, match="locked twice"):
        parse(one + item, name="images.lock.yaml")


def test_write_does_not_touch_an_unchanged_file(tmp_path: Path) -> None:
    path = tmp_path / "images.lock.yaml"
    lock = LockFile.of(sample())
    assert lockfile.write(path, lock) is True
    os.utime(path, (1_000_000, 1_000_000))
    assert lockfile.write(path, LockFile.of(dict(reversed(list(sample().items()))))) is False
    assert path.stat().st_mtime == 1_000_000
    assert not list(tmp_path.glob(".*.tmp"))


def test_resolve_keeps_locked_entries_adds_missing_drops_undeclared() -> None:
    b1, b2 = build("deb/1", 1), build("deb/1", 2)
    a1 = build("alp/3", 1)
    cfg = config(entry("r:deb/1"), entry("r:alp/3"), entry("r:pin/1", fingerprint="f" * 64))
    gone = LockKey("local", "r:old/1", "container", "x86_64")
    deb = LockKey("local", "r:deb/1", "container", "x86_64")
    existing = {deb: lb(b1), gone: lb(b1)}
    cat = catalog(b1, b2, a1)
    kept = resolve(cfg, {"r": cat}, {"local": "x86_64"}, existing, lambda e: False)
    assert kept == {deb: lb(b1), LockKey("local", "r:alp/3", "container", "x86_64"): lb(a1)}
    upgraded = resolve(cfg, {"r": cat}, {"local": "x86_64"}, existing, lambda e: True)
    assert upgraded[deb] == lb(b2)
    assert all(k.source != "r:pin/1" for k in upgraded)  # pins are never locked


def test_resolve_unknown_alias_is_a_plan_error() -> None:
    with pytest.raises(PlanError, match="has no container image 'nope/1'"):
        resolve(config(entry("r:nope/1")), {"r": catalog(build("deb/1", 1))},
                {"local": "x86_64"}, {}, lambda e: False)


def test_upgrade_selector_checks_the_named_sources() -> None:
    cfg = config(entry("r:deb/1"), entry("r:pin/1", fingerprint="f" * 64))
    with pytest.raises(IncusImagesError, match="only with --upgrade"):
        lock.upgrade_selector(cfg, False, ["r:deb/1"])
    with pytest.raises(IncusImagesError, match="r:pin/1: is pinned by fingerprint"):
        lock.upgrade_selector(cfg, True, ["r:pin/1"])
    with pytest.raises(IncusImagesError, match=r"r:x/1: is not a tracked source .*r:deb/1"):
        lock.upgrade_selector(cfg, True, ["r:x/1"])
    assert lock.upgrade_selector(cfg, True, ["r:deb/1"])(cfg.entries[0])


# -- run_lock against in-memory ports --------------------------------------------------------

class Connector:
    def __init__(self, stores: dict[str, FakeStore]) -> None:
        self.stores = stores
        self.connected: list[str] = []

    def __call__(self, target: TargetSpec) -> ImageStore:
        self.connected.append(target.name)
        return self.stores[target.name]


def on_disk(cfg: Config, tmp_path: Path) -> Config:
    return cfg.model_copy(update={"path": str(tmp_path / "images.yaml")})


def test_run_lock_contacts_targets_only_for_entries_without_architecture(
        tmp_path: Path) -> None:
    b1 = build("deb/1", 1)
    a1 = build("deb/1", 1, arch="aarch64")
    reader = FakeReader({"r": catalog(b1, a1)})
    conn = Connector({"local": FakeStore("local"), "prod": FakeStore("prod")})
    cfg = on_disk(config(entry("r:deb/1", architecture="aarch64"),
                         entry("r:deb/1", target="prod"), targets=("local", "prod")), tmp_path)
    outcome = run_lock(cfg, upgrade=False, sources=(), reader=reader, connect=conn)
    assert conn.connected == ["prod"]
    assert outcome.written and outcome.path == tmp_path / "images.lock.yaml"
    assert {(k.target, k.architecture): v.fingerprint for k, v in outcome.lock.locks().items()} \
        == {("local", "aarch64"): a1.fingerprint, ("prod", "x86_64"): b1.fingerprint}
    assert "Wrote" in render_outcome(outcome)


def test_run_lock_twice_rewrites_nothing_and_reads_no_remote(tmp_path: Path) -> None:
    b1, b2 = build("deb/1", 1), build("deb/1", 2)
    reader = FakeReader({"r": catalog(b1)})
    conn = Connector({"local": FakeStore("local")})
    cfg = on_disk(config(entry("r:deb/1", architecture="x86_64")), tmp_path)
    run_lock(cfg, upgrade=False, sources=(), reader=reader, connect=conn)
    path = tmp_path / "images.lock.yaml"
    before = path.read_bytes()
    os.utime(path, (1_000_000, 1_000_000))
    reader.catalogs["r"] = catalog(b1, b2)
    reader.fetches.clear()
    again = run_lock(cfg, upgrade=False, sources=(), reader=reader, connect=conn)
    assert not again.written and again.changes == [] and reader.fetches == []
    assert path.read_bytes() == before and path.stat().st_mtime == 1_000_000
    assert "is up to date (1 entry)" in render_outcome(again)
    upgraded = run_lock(cfg, upgrade=True, sources=("r:deb/1",), reader=reader, connect=conn)
    assert upgraded.written
    assert [(c.before, c.after) for c in upgraded.changes] == [(lb(b1), lb(b2))]
    assert f"{b1.fingerprint[:12]} ({b1.version}) -> {b2.fingerprint[:12]}" in \
        render_outcome(upgraded)


def test_run_lock_upgrade_named_source_moves_only_that_one(tmp_path: Path) -> None:
    d1, d2, a1, a2 = build("deb/1", 1), build("deb/1", 2), build("alp/3", 1), build("alp/3", 2)
    reader = FakeReader({"r": catalog(d1, a1)})
    conn = Connector({"local": FakeStore("local")})
    cfg = on_disk(config(entry("r:deb/1", architecture="x86_64"),
                         entry("r:alp/3", architecture="x86_64")), tmp_path)
    run_lock(cfg, upgrade=False, sources=(), reader=reader, connect=conn)
    reader.catalogs["r"] = catalog(d1, d2, a1, a2)
    out = run_lock(cfg, upgrade=True, sources=("r:alp/3",), reader=reader, connect=conn)
    fps = {k.source: v.fingerprint for k, v in out.lock.locks().items()}
    assert fps == {"r:deb/1": d1.fingerprint, "r:alp/3": a2.fingerprint}
    everything = run_lock(cfg, upgrade=True, sources=(), reader=reader, connect=conn)
    assert {v.fingerprint for v in everything.lock.locks().values()} == {d2.fingerprint,
                                                                         a2.fingerprint}


def test_a_hostile_lock_file_is_a_lock_file_error(tmp_path: Path) -> None:
    """Aliases, deep nesting and a FIFO beside the file: an error, never a hang or a blow-up."""
    from reconciler.adapters.lockfile import read

    laughs = "version: 1\na: &a [x, x]\nb: [*a, *a]\n"
    with pytest.raises(LockFileError, match=r"line 2: YAML anchors \(&a\) are not supported"):
        parse(laughs, name="images.lock.yaml")
    with pytest.raises(LockFileError, match="nesting deeper than 64 levels"):
        parse("a: " + "[" * 100 + "]" * 100 + "\n", name="images.lock.yaml")
    fifo = tmp_path / "images.lock.yaml"
    os.mkfifo(fifo)
    with pytest.raises(LockFileError, match=r"is a FIFO \(named pipe\), not a regular file"):
        read(fifo)
