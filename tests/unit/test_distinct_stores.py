"""``check_distinct_stores``: two targets of one file must not reach one image store."""

from __future__ import annotations

import pytest

from reconciler.core.planner import check_distinct_stores
from reconciler.errors import PlanError
from reconciler.model.observed import TargetState


def state(target: str, project: str = "default", effective: str | None = None,
          server: str = "abc") -> TargetState:
    return TargetState(target=target, project=project,
                       effective_project=effective or project, host_architecture="x86_64",
                       server_fingerprint=server)


def test_distinct_daemons_and_projects_pass() -> None:
    check_distinct_stores([state("a"), state("b", server="def"), state("c", "own")])


def test_unknown_daemon_identity_is_not_compared() -> None:
    check_distinct_stores([state("a", server=""), state("b", server="")])


def test_a_project_without_own_images_is_the_default_store() -> None:
    with pytest.raises(PlanError) as err:
        check_distinct_stores([state("b", "p", "default"), state("a"), state("c", "own")])
    assert str(err.value) == (
        "targets 'a' (project 'default') and 'b' (project 'p') reach one image store, the "
        "images of project 'default' of one daemon; a project with features.images=false "
        "uses the images of project 'default': keep one of them in the file")


def test_the_same_project_twice() -> None:
    with pytest.raises(PlanError, match=r"'x' .* and 'y' .* one image store") as err:
        check_distinct_stores([state("x", "web"), state("y", "web")])
    assert "features.images" not in str(err.value)


def test_involving_reports_only_stores_a_chosen_target_reaches() -> None:
    shared = [state("a"), state("b", "p", "default"), state("c", "own")]
    check_distinct_stores(shared, involving=["c"])
    with pytest.raises(PlanError):
        check_distinct_stores(shared, involving=["b"])
