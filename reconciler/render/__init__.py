"""Renderers: pure functions from a finished Plan or ApplyResult to a string.

They compute nothing and read nothing but their argument (Terraform's rule:
diffing and rendering are separate, so a new format touches no planning code).
"""

from __future__ import annotations

from typing import Literal

from reconciler.model.plan import Plan
from reconciler.render import json as json_format
from reconciler.render import markdown, text

PlanFormat = Literal["text", "json", "markdown"]
PLAN_FORMATS: tuple[PlanFormat, ...] = ("text", "json", "markdown")


def render_plan(plan: Plan, fmt: PlanFormat = "text", *, file_name: str = "images.yaml") -> str:
    """The plan in ``fmt``; ``file_name`` only words the text and markdown no-change line."""
    if fmt == "json":
        return json_format.render_plan(plan)
    if fmt == "markdown":
        return markdown.render_plan(plan, file_name=file_name)
    return text.render_plan(plan, file_name=file_name)


__all__ = ["PLAN_FORMATS", "PlanFormat", "render_plan"]
