"""The lock file starts with a yaml-language-server modeline naming the lock schema.

The reference follows the desired-state file's own modeline (the two files sit in one
directory); without one it is ``schemas/lock.schema.json``, where the contract puts the
schemas.  Readers take the line as a comment.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.adapters import lockfile
from reconciler.adapters.lockfile import DEFAULT_SCHEMA_REF, parse, render, schema_ref
from reconciler.model.lock import LockedBuild, LockFile, LockKey
from reconciler.pipeline import run_lock
from tests.support.builders import build, catalog, config, entry
from tests.support.fakes import FakeReader, FakeStore
from tests.unit.test_lockfile import Connector, on_disk

ROOT = Path(__file__).resolve().parents[2]
B1 = build("deb/1", 1)
LOCK = LockFile.of({LockKey("local", "r:deb/1", "container", "x86_64"):
                    LockedBuild(fingerprint=B1.fingerprint, version=B1.version, size=B1.size)})


def test_the_first_line_is_the_modeline_and_readers_accept_it() -> None:
    text = render(LOCK)
    assert text.splitlines()[0] == "# yaml-language-server: $schema=schemas/lock.schema.json"
    assert parse(text, name="images.lock.yaml") == LOCK
    other = render(LOCK, "../schemas/lock.schema.json")
    assert other.splitlines()[0] == "# yaml-language-server: $schema=../schemas/lock.schema.json"
    assert parse(other, name="images.lock.yaml") == LOCK


def test_a_lock_file_without_the_modeline_still_reads() -> None:
    """Files written before the modeline existed."""
    old = "\n".join(render(LOCK).splitlines()[1:]) + "\n"
    assert parse(old, name="images.lock.yaml") == LOCK


@pytest.mark.parametrize(("desired", "ref"), [
    ("# yaml-language-server: $schema=../schemas/desired-state.schema.json\nversion: 1\n",
     "../schemas/lock.schema.json"),
    ("# yaml-language-server: $schema=schemas/desired-state.schema.json\n",
     "schemas/lock.schema.json"),
    ("# a comment\n# yaml-language-server: $schema=https://example.org/s/desired-state.schema.json\n",
     "https://example.org/s/lock.schema.json"),
    ("# yaml-language-server: $schema=a b/desired-state.schema.json\n", DEFAULT_SCHEMA_REF),
    ("# yaml-language-server: $schema=other.json\n", DEFAULT_SCHEMA_REF),
    ("version: 1\n", DEFAULT_SCHEMA_REF),
    ("", DEFAULT_SCHEMA_REF),
])
def test_schema_ref_follows_the_desired_state_modeline(desired: str, ref: str) -> None:
    assert schema_ref(desired) == ref


def test_schema_ref_for_reads_the_file_and_falls_back(tmp_path: Path) -> None:
    path = tmp_path / "images.yaml"
    path.write_text("# yaml-language-server: $schema=../schemas/desired-state.schema.json\n",
                    encoding="utf-8")
    assert lockfile.schema_ref_for(path) == "../schemas/lock.schema.json"
    assert lockfile.schema_ref_for(tmp_path / "missing.yaml") == DEFAULT_SCHEMA_REF
    assert lockfile.schema_ref_for(tmp_path) == DEFAULT_SCHEMA_REF  # a directory
    path.write_bytes(b"\xef\xbb\xbf# yaml-language-server: $schema=x/desired-state.schema.json\n")
    assert lockfile.schema_ref_for(path) == "x/lock.schema.json"  # a byte-order mark


def test_lock_writes_the_modeline_of_the_desired_state_file(tmp_path: Path) -> None:
    cfg = on_disk(config(entry("r:deb/1", architecture="x86_64")), tmp_path)
    Path(cfg.path).write_text(
        "# yaml-language-server: $schema=../schemas/desired-state.schema.json\nversion: 1\n",
        encoding="utf-8")
    run_lock(cfg, upgrade=False, sources=(), reader=FakeReader({"r": catalog(B1)}),
             connect=Connector({"local": FakeStore("local")}))
    written = (tmp_path / "images.lock.yaml").read_text(encoding="utf-8")
    assert written.startswith("# yaml-language-server: $schema=../schemas/lock.schema.json\n")


def test_the_examples_modeline_resolves_to_the_committed_lock_schema() -> None:
    ref = lockfile.schema_ref_for(ROOT / "examples" / "full.yaml")
    assert (ROOT / "examples" / ref).resolve() == (ROOT / "schemas" / "lock.schema.json")
