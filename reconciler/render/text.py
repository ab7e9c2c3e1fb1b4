"""The plan and the apply result as plain text, for terminals and CI logs.

Pure: a function of the :class:`Plan` (or :class:`ApplyResult`, and the seconds
apply took, passed in) alone, no colour, no clock, no environment.  Nothing is
printed that the plan does not hold, and the plan holds no key material.  Layout
(Terraform-like)::

    Warnings:
      ! local: images:nest/1.0: instances need ... [requirements.nesting]

    Target local (project default):
      + image.download  images:debian/12 4f3a2b1c9d8e (123.5 MB)  # declared, not in store
      ~ image.update    images:debian/12 4f3a2b1c9d8e  # declared fields differ
          auto_update: false -> true
      - image.delete    images:debian/11 0123456789ab  # replaced by the newer build ...
      left alone: 333333333333 (nobody, cached) aliases: scratch

    Plan: 1 to download, 1 to update, 1 to delete (123.5 MB to download).

Targets come in name order; within a target, changes come in the plan's order,
which is the order ``apply`` performs them in.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from reconciler.model.fingerprint import short_fingerprint
from reconciler.model.plan import Action, Change, FieldChange, Plan, Untouched, summarize
from reconciler.model.result import ApplyResult, Status
from reconciler.render.labels import (
    ACTION_WIDTH,
    ALIAS_ACTIONS,
    MARKERS,
    change_label,
    fingerprints,
    name_of,
)
from reconciler.render.units import elapsed, human_bytes, plural, value


def notes(change: Change) -> list[str]:
    """Short facts shown in parentheses: download size, cached replacement, description."""
    out: list[str] = []
    if change.action is Action.IMAGE_DOWNLOAD:
        if change.size is not None:
            out.append(human_bytes(change.size))
        if change.replace_cached:
            out.append("deletes the broken copy first" if change.reason.startswith("broken copy")
                       else "replaces the daemon-cached copy")
    if change.action is Action.IMAGE_DELETE and change.instances:
        out.append("instances created from it: " + ", ".join(change.instances))
    if change.action is Action.ALIAS_CREATE and change.description:
        out.append(f"description: {value(change.description)}")
    return out


def field_lines(fields: dict[str, FieldChange] | None) -> list[str]:
    """``field: before -> after`` per field; dict-valued fields get one line per key."""
    lines: list[str] = []
    for name, fc in (fields or {}).items():
        before, after = fc.from_, fc.to
        if isinstance(before, dict | None) and isinstance(after, dict | None) and (
            isinstance(before, dict) or isinstance(after, dict)
        ):
            b, t = before or {}, after or {}
            for key in [*t, *(k for k in b if k not in t)]:
                lines.append(f"{name}.{key}: {value(b.get(key))} -> {value(t.get(key))}")
        else:
            lines.append(f"{name}: {value(before)} -> {value(after)}")
    return lines


_PHRASES: tuple[tuple[tuple[Action, ...], str, str], ...] = (
    ((Action.SERVER_UPDATE,), "server setting to change", "server settings to change"),
    ((Action.IMAGE_DOWNLOAD,), "to download", "to download"),
    ((Action.IMAGE_ADOPT,), "to adopt", "to adopt"),
    ((Action.IMAGE_REFRESH,), "to refresh", "to refresh"),
    ((Action.IMAGE_UPDATE,), "to update", "to update"),
    (ALIAS_ACTIONS, "alias change", "alias changes"),
    ((Action.IMAGE_DELETE,), "to delete", "to delete"),
)


def summary_phrase(plan: Plan) -> str | None:
    """``"1 to download, 2 alias changes (123.5 MB to download)"``, None for no changes.

    Counted from ``plan.changes`` (with the planner's own :func:`summarize`), so the
    line always agrees with the changes listed above it.
    """
    if not plan.changes:
        return None
    summary = summarize(plan.changes)
    parts: list[str] = []
    for actions, one, many in _PHRASES:
        n = sum(summary.actions.get(a.value, 0) for a in actions)
        if n:
            parts.append(f"{n} {one if n == 1 else many}")
    text = ", ".join(parts)
    if summary.download_bytes:
        text += f" ({human_bytes(summary.download_bytes)} to download)"
    return text


def targets_of(plan: Plan) -> list[str]:
    """Every target the plan mentions (changes, warnings aside), in name order."""
    return sorted({c.target for c in plan.changes} | {u.target for u in plan.untouched})


def project_of(plan: Plan, target: str) -> str | None:
    return next((c.project for c in plan.changes if c.target == target), None)


def untouched_text(u: Untouched) -> str:
    """``333333333333 (owner web, cached) aliases: a, b``."""
    who = f"owner {u.owner}" if u.owner else "nobody"
    text = f"{short_fingerprint(u.fingerprint)} ({who}{', cached' if u.cached else ''})"
    if u.aliases:
        text += " aliases: " + ", ".join(u.aliases)
    return text


# -- text -----------------------------------------------------------------------------------

def change_line(change: Change) -> str:
    """One line for a change, without the reason: ``+ image.download  images:x 4f3a... (1 MB)``."""
    before, after = fingerprints(change)
    a = change.action
    if a is Action.SERVER_UPDATE:
        subject = "; ".join(field_lines(change.fields)) or "server config"
    elif a is Action.ALIAS_CREATE:
        subject = f"{name_of(change)} -> {short_fingerprint(after)}"
    elif a is Action.ALIAS_MOVE:
        subject = f"{name_of(change)}: {short_fingerprint(before)} -> {short_fingerprint(after)}"
    elif a is Action.ALIAS_UPDATE:
        subject = f"{name_of(change)} on {short_fingerprint(after)}"
    elif a is Action.ALIAS_DELETE:
        subject = f"{name_of(change)} (on {short_fingerprint(before)})"
    else:
        subject = f"{name_of(change)} {short_fingerprint(after)}"
    extra = notes(change)
    if extra:
        subject += " (" + ", ".join(extra) + ")"
    return f"{MARKERS[a]} {a.value:<{ACTION_WIDTH}}  {subject}"


def _change_block(change: Change) -> Iterator[str]:
    yield f"  {change_line(change)}  # {change.reason}"
    if change.action is not Action.SERVER_UPDATE:
        for line in field_lines(change.fields):
            yield f"      {line}"


def _header(target: str, project: str | None) -> str:
    return f"Target {target}" + (f" (project {project})" if project else "") + ":"


def _join(blocks: Iterable[list[str]]) -> str:
    return "\n\n".join("\n".join(b) for b in blocks if b) + "\n"


def render_plan(plan: Plan, *, file_name: str = "images.yaml") -> str:
    """The whole plan as text, ending with the summary line and a newline."""
    blocks: list[list[str]] = []
    if plan.warnings:
        blocks.append(["Warnings:"] + [
            f"  ! {w.target}: {w.image + ': ' if w.image else ''}{w.message} [{w.code}]"
            for w in plan.warnings
        ])
    if plan.notes:
        blocks.append(["Notes (not checked):"] + [f"  - {n}" for n in plan.notes])
    for target in targets_of(plan):
        block = [_header(target, project_of(plan, target))]
        for change in plan.for_target(target):
            block.extend(_change_block(change))
        block.extend(f"  left alone: {untouched_text(u)}"
                     for u in plan.untouched if u.target == target)
        blocks.append(block)
    failed = plan.failed_targets
    blocks.extend([_header(target, None), "  not planned: it could not be observed (see the "
                   "error)"] for target in failed)
    phrase = summary_phrase(plan)
    if phrase is None and failed:
        blocks.append([f"No changes on the targets that could be observed; "
                       f"{plural(len(failed), 'target')} not planned."])
    elif phrase is None:
        blocks.append([f"No changes. The image stores match {file_name}."])
    else:
        blocks.append([f"Plan: {phrase}." + (f" {plural(len(failed), 'target')} not planned."
                                               if failed else "")])
    return _join(blocks)


# -- apply result ---------------------------------------------------------------------------

_COLUMN = len("skipped: ")


def _unreached(result: ApplyResult) -> str:
    """``; could not reach target prod``: the targets apply never planned, or ""."""
    if not result.failed_targets:
        return ""
    names = ", ".join(result.failed_targets)
    return f"; could not reach target{'s' if len(result.failed_targets) > 1 else ''} {names}"


def _done_counts(result: ApplyResult) -> str:
    """``1 image.download (1.3 kB downloaded), 1 alias.create``: the changes made, per
    action in the order apply performs them; the bytes are the downloaded images' sizes."""
    done = [o.change for o in result.outcomes if o.status is Status.DONE]
    parts: list[str] = []
    for action in Action:
        mine = [c for c in done if c.action is action]
        if not mine:
            continue
        part = f"{len(mine)} {action.value}"
        size = sum(c.size or 0 for c in mine) if action is Action.IMAGE_DOWNLOAD else 0
        if size:
            part += f" ({human_bytes(size)} downloaded)"
        parts.append(part)
    return ", ".join(parts)


def render_result(result: ApplyResult, *, seconds: float | None = None) -> str:
    """A summary of what apply did, not the plan again::

        Apply failed: 1 done, 1 failed, 1 skipped in 12s.
          done:    1 image.adopt
          failed:  local: image.download images:debian/12 4f3a2b1c9d8e: <why>
          skipped: local: alias.create debian-12 4f3a2b1c9d8e (not attempted: ...)

    The first line counts outcomes (and says how long apply took, when ``seconds``
    is given); then the changes made, counted per action with the bytes
    downloaded, and every failed and skipped change by name.  Each change's own
    line was printed on stderr while apply ran.
    """
    unreached = _unreached(result)
    if not result.outcomes:
        return f"Apply {'failed' if unreached else 'complete'}: no changes{unreached}.\n"
    counts = {s: sum(1 for o in result.outcomes if o.status is s) for s in Status}
    parts = [f"{counts[Status.DONE]} done"]
    parts += [f"{counts[s]} {s.value}" for s in (Status.FAILED, Status.SKIPPED) if counts[s]]
    took = f" in {elapsed(seconds)}" if seconds is not None else ""
    verdict = "complete" if result.ok else "failed"  # ok counts unreached targets
    lines = [f"Apply {verdict}: {', '.join(parts)}{took}{unreached}."]
    made = _done_counts(result)
    if made:
        lines.append(f"  {'done:':<{_COLUMN}}{made}")
    for o in result.outcomes:
        if o.status is Status.FAILED:
            why = o.message or "no reason given"
            lines.append(f"  {'failed:':<{_COLUMN}}{o.change.target}: {change_label(o.change)}: "
                         f"{' '.join(why.split())}")
        elif o.status is Status.SKIPPED:
            why = f" ({o.message})" if o.message else ""
            lines.append(f"  {'skipped:':<{_COLUMN}}{o.change.target}: "
                         f"{change_label(o.change)}{why}")
    lines += [f"  {'failed:':<{_COLUMN}}{target}: not planned, nothing applied"
              for target in result.failed_targets]
    return "\n".join(lines) + "\n"
