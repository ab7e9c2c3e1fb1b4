"""``image.refresh``: in the contract's action list, never planned, refused by apply.

The interface lets an implementation refresh an image by downloading, moving
aliases and deleting instead; this one does.  The enum value stays (a saved plan
or a JSON consumer may name it), so every renderer must still cope with it, from
the one place that knows how to name actions (``render.labels``), and apply must
refuse it with a clear message rather than do something.
"""

from __future__ import annotations

import re

from reconciler.apply.executor import apply_plan
from reconciler.model.plan import Action, Change, Plan, summarize
from reconciler.model.result import Status
from reconciler.render import markdown, text
from reconciler.render.labels import MARKERS, change_label
from tests.support.fakes import FakeReader, FakeStore

OLD = "1" * 64


def refresh() -> Change:
    return Change(action=Action.IMAGE_REFRESH, target="local", project="default",
                  reason="newer build upstream", fingerprint=OLD, to="4" * 64,
                  source="images:debian/12")


def one_of_each() -> tuple[Change, ...]:
    return tuple(Change(action=a, target="local", project="default", reason="r",
                        fingerprint=OLD, source="images:x", alias="a", to=OLD, from_=OLD)
                 for a in Action)


def test_every_action_has_a_marker_and_is_counted_in_the_summary_line() -> None:
    assert set(MARKERS) == set(Action)
    changes = one_of_each()
    phrase = text.summary_phrase(Plan(changes=changes, summary=summarize(changes)))
    assert phrase is not None
    assert sum(int(n) for n in re.findall(r"(\d+) ", phrase)) == len(Action)
    assert "1 to refresh" in phrase


def test_a_refresh_is_rendered_like_any_other_image_change() -> None:
    plan = Plan(changes=(refresh(),), summary=summarize((refresh(),)))
    assert text.render_plan(plan).splitlines()[1] == (
        "  ~ image.refresh   images:debian/12 111111111111  # newer build upstream")
    assert "| `~ image.refresh` | `images:debian/12` | `111111111111` |" in (
        markdown.render_plan(plan))
    assert change_label(refresh()) == "image.refresh images:debian/12 111111111111"


def test_apply_refuses_a_refresh_as_not_supported_and_changes_nothing() -> None:
    store = FakeStore()
    before = (dict(store.images), dict(store.aliases), dict(store.config))
    result = apply_plan(Plan(changes=(refresh(),)), stores={"local": store},
                        reader=FakeReader({}), remotes={})
    (outcome,) = result.outcomes
    assert outcome.status is Status.FAILED
    assert outcome.message == "target 'local': image.refresh is not supported"
    assert (dict(store.images), dict(store.aliases), dict(store.config)) == before
