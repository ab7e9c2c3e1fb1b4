"""The alias race on a real daemon: someone makes a declared alias by hand, on an image
nobody manages, just before the apply would create it.

The apply runs in-process through the real adapter (``IncusStore``); a thin wrapper
makes the hand-made alias through the daemon's API at the exact moment, the way a
second admin would.  Everything after it runs as users do, through the CLI.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconciler.desired.load import load_config
from reconciler.model.result import Status
from reconciler.pipeline import apply_plan, make_plan, opened_stores
from reconciler.ports import ImageStore
from reconciler.render.progress import SilentReporter
from reconciler.services import system_services
from tests.support.e2e import World

pytestmark = pytest.mark.integration

NOW = datetime(2026, 6, 1, tzinfo=UTC)


class _Racer:
    """An ``IncusStore`` whose first ``create_alias(name)`` is beaten by a hand-made one."""

    def __init__(self, store: ImageStore, world: World, name: str, onto: str) -> None:
        self._store, self._world, self._name, self._onto = store, world, name, onto

    def __getattr__(self, attr: str) -> object:
        return getattr(self._store, attr)

    def create_alias(self, name: str, target: str, description: str) -> None:
        if name == self._name:
            self._name = ""
            self._world.daemon.api("POST", "/1.0/images/aliases",
                                   {"name": name, "target": self._onto})
        self._store.create_alias(name, target, description)


def test_a_hand_made_alias_that_wins_the_race_is_never_taken(world: World) -> None:
    built = world.tree.add("tiny", "1.0", "20260101_0000")
    unmanaged = world.import_by_hand("other", "1.0", "20260101_0000")
    path = world.write("""\
        images:
          - source: test:tiny/1.0
            aliases: [tiny]
        """)
    config = load_config(path, {})

    real = system_services()
    with opened_stores(config, real) as stores, real.reader() as reader:
        plan = make_plan(config, stores, reader, targets=None, allow_empty=False, now=NOW,
                         locks=None)
        racing = {"local": _Racer(stores["local"], world, "tiny", unmanaged)}
        result = apply_plan(config, plan, racing, reader,  # type: ignore[arg-type]
                            reporter=SilentReporter())
    assert [(o.change.action.value, o.status) for o in result.outcomes] == [
        ("image.download", Status.DONE), ("alias.create", Status.FAILED)]
    assert world.aliases() == {"tiny": unmanaged}

    conflict = world.cli("plan")
    assert conflict.returncode == 1, conflict.stdout + conflict.stderr
    assert f"alias 'tiny' is held by image {unmanaged}" in conflict.stderr

    world.write("""\
        images:
          - source: test:tiny/1.0
        """)
    done = world.cli("apply", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No changes." in done.stdout and "alias.delete" not in done.stdout
    assert world.aliases() == {"tiny": unmanaged}
    assert set(world.images()) == {built.fingerprint, unmanaged}
