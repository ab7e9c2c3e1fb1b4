"""Renderers: pure functions from a finished Plan or ApplyResult to a string.

They compute nothing and read nothing but their argument (Terraform's rule:
diffing and rendering are separate, so a new format touches no planning code).
"""

from __future__ import annotations

from typing import Literal

from reconciler.model.plan import Plan
from reconciler.render import json as json_format
from reconciler.render import markdown, text
from reconciler.render.safe import terminal_safe

PlanFormat = Literal["text", "json", "markdown"]
PLAN_FORMATS: tuple[PlanFormat, ...] = ("text", "json", "markdown")


def render_plan(plan: Plan, fmt: PlanFormat = "text", *, file_name: str = "images.yaml") -> str:
    """The plan in ``fmt``, safe for a terminal (:func:`terminal_safe`); ``file_name`` only
    words the text and markdown no-change line."""
    if fmt == "json":
        out = json_format.render_plan(plan)
    elif fmt == "markdown":
        out = markdown.render_plan(plan, file_name=file_name)
    else:
        out = text.render_plan(plan, file_name=file_name)
    return terminal_safe(out)


__all__ = ["PLAN_FORMATS", "PlanFormat", "render_plan", "terminal_safe"]
