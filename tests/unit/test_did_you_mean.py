"""Unknown keys name the known key the writer most likely meant, on the one error line."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.desired.load import load_config
from reconciler.desired.shapecheck import known_keys
from reconciler.desired.suggest import did_you_mean
from reconciler.errors import ValidationFailed

HEAD = "version: 1\nremotes:\n  images:\n    url: https://images.linuxcontainers.org\n"


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "images.yaml"
    path.write_text(HEAD + text, encoding="utf-8")
    with pytest.raises(ValidationFailed) as failed:
        load_config(path, {})
    return [f"{d.line}:{d.column}: {d.message}" for d in failed.value.diagnostics]


@pytest.mark.parametrize(("text", "line"), [
    ("imgaes: []\n",
     "5:1: unknown key 'imgaes' at top level (did you mean 'images'?)"),
    ("images:\n  - source: images:debian/12\n    fingerprnt: abc\n",
     "7:5: unknown key 'fingerprnt' in images[0] (did you mean 'fingerprint'?)"),
    ("images:\n  - source: images:debian/12\n    aliases: [{name: a, desc: b}]\n",
     "7:25: unknown key 'desc' in images[0].aliases[0] (did you mean 'description'?)"),
    ("defaults: {auto_updte: true}\n",
     "5:12: unknown key 'auto_updte' in defaults (did you mean 'auto_update'?)"),
    ("policy: {alias_conflict: take}\n",
     "5:10: unknown key 'alias_conflict' in policy (did you mean 'alias_conflicts'?)"),
    ("targets:\n  prod:\n    url: https://h:8443\n    projet: web\n",
     "8:5: unknown key 'projet' in targets.prod (did you mean 'project'?)"),
    ("server:\n  images.remote_cache_expiy: 3\n",
     "6:3: server key 'images.remote_cache_expiy' is not an Incus setting "
     "(did you mean 'images.remote_cache_expiry'?)"),
    ("server:\n  image.auto_update_interval: 3\n",
     "6:3: server key 'image.auto_update_interval' is not allowed: only images.* settings "
     "and cluster.images_minimal_replica can be managed "
     "(did you mean 'images.auto_update_interval'?)"),
])
def test_a_typo_gets_a_suggestion(tmp_path: Path, text: str, line: str) -> None:
    assert problems(tmp_path, text) == [line]


def test_remote_keys_are_suggested(tmp_path: Path) -> None:
    text = "    protocl: incus\n"
    assert problems(tmp_path, text) == [
        "5:5: unknown key 'protocl' in remotes.images (did you mean 'protocol'?)"]


def test_nothing_close_means_no_suggestion(tmp_path: Path) -> None:
    assert problems(tmp_path, "images:\n  - source: images:debian/12\n    zzz: 1\n") == [
        "7:5: unknown key 'zzz' in images[0]"]
    assert problems(tmp_path, "server:\n  core.https_address: x\n") == [
        "6:3: server key 'core.https_address' is not allowed: only images.* settings and "
        "cluster.images_minimal_replica can be managed"]


def test_did_you_mean() -> None:
    assert did_you_mean("prune", ["prune"]) == ""  # the key itself is never suggested
    assert did_you_mean("pr", ["prune", "profiles"]) == ""  # too short a prefix
    assert did_you_mean("pro", ["prune", "profiles", "properties"]) == ""  # two start so
    assert did_you_mean("archi", ["architecture", "aliases"]) == " (did you mean 'architecture'?)"
    assert did_you_mean("tagrets", ["targets", "type"]) == " (did you mean 'targets'?)"


def test_known_keys_follow_the_model() -> None:
    assert "fingerprint" in known_keys(("images", 0))
    assert known_keys(("images", 0, "aliases", 1)) == ["name", "description"]
    assert known_keys(("remotes", "x")) == ["url", "protocol", "certificate"]
    assert known_keys(("policy", "cached")) == ["delete_unused_after"]
    assert "owner" in known_keys(())
    assert known_keys(("images", 0, "properties")) == []
    assert known_keys(("nope",)) == []
