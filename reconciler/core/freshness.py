"""Whether a saved plan still holds: what it relies on, and what moved since (pure).

Invariants:

* :func:`select` records exactly what the plan relies on; :func:`take` reads the
  same items from a later observation; :func:`differences` compares the two.
  Last-use times, other owners' and daemon-cached images, other projects and
  unrelated server config are never part of a snapshot, so they never make a plan
  stale.
* :func:`check_matches` and :func:`check_fresh` raise (``PlanFileError``,
  ``StalePlan``) and change nothing.  Nothing here reads key material: connection
  details come from the desired-state file when the plan is applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from reconciler.core.ownership import attribute
from reconciler.errors import PlanFileError, StalePlan
from reconciler.model.config import CLUSTER_SERVER_KEYS, Config
from reconciler.model.fingerprint import short_fingerprint, short_hex
from reconciler.model.observed import Inventory, TargetState
from reconciler.model.plan import Plan
from reconciler.model.snapshot import ImageFields, ObservedSnapshot


def touched(plan: Plan) -> list[str]:
    """The targets the plan changes, in name order."""
    return sorted({c.target for c in plan.changes})


def select(state: TargetState, plan: Plan, config: Config) -> ObservedSnapshot:
    """What ``plan`` relies on in ``state`` (one of the targets it changes).

    Images: every one this owner manages plus every fingerprint a change names
    (``fingerprint`` or ``to``), except daemon-cached images nobody manages (the
    daemon prunes those on its own).  Aliases: every one the file declares for the
    target, every one a change names, every one this owner's inventory lists.
    """
    owner = plan.owner
    attrs = attribute(state)
    changes = plan.for_target(state.target)
    fps = {fp for fp, a in attrs.items() if a.owner == owner}
    fps |= {fp for c in changes for fp in (c.fingerprint, c.to) if fp}
    cached = {img.fingerprint for img in state.images
              if img.cached and attrs[img.fingerprint].owner is None}
    aliases = {a.name for e in config.entries_for(state.target) for a in e.aliases}
    aliases |= {c.alias for c in changes if c.alias}
    mine = state.inventories.get(owner)
    if mine is not None:
        aliases |= mine.aliases
    return take(state, owner, fps - cached, aliases)


def take(state: TargetState, owner: str, fingerprints: Iterable[str],
         aliases: Iterable[str]) -> ObservedSnapshot:
    """The snapshot of ``state`` for exactly these images and aliases."""
    images: dict[str, ImageFields | None] = {}
    for fp in sorted(set(fingerprints)):
        img = state.image(fp)
        images[fp] = ImageFields.of(img) if img is not None else None
    held = state.alias_targets()
    targets = {n: (held[n].target if n in held else None) for n in sorted(set(aliases))}
    inventory = state.inventories.get(owner) or Inventory(owner=owner,
                                                          project=state.effective_project)
    server = {k: v for k, v in sorted(state.server_config.items())
              if k.startswith("images.") or k in CLUSTER_SERVER_KEYS}
    return ObservedSnapshot(project=state.effective_project, images=images, aliases=targets,
                            inventory=inventory, server=server)


def differences(before: ObservedSnapshot, after: ObservedSnapshot) -> list[str]:
    """What moved between two snapshots of one target, one phrase each (empty: nothing)."""
    out: list[str] = []
    if before.project != after.project:
        out.append(f"its images now live in project {after.project!r} (was {before.project!r})")
    out += _image_differences(before, after)
    out += _alias_differences(before, after)
    if before.inventory != after.inventory:
        out.append(f"the ownership record of owner {before.inventory.owner!r} changed "
                   "(another apply ran?)")
    for key in sorted(set(before.server) | set(after.server)):
        was_v, now_v = before.server.get(key), after.server.get(key)
        if was_v != now_v:
            out.append(f"server setting {key} is {_setting(now_v)} (was {_setting(was_v)})")
    return out


def _image_differences(before: ObservedSnapshot, after: ObservedSnapshot) -> list[str]:
    """The recorded images that appeared, went, or changed a recorded field."""
    out: list[str] = []
    for fp, was in before.images.items():
        now = after.images.get(fp)
        if was is None and now is not None:
            out.append(f"image {short_fingerprint(fp)} has appeared")
        elif was is not None and now is None:
            out.append(f"image {short_fingerprint(fp)} is gone")
        elif was is not None and now is not None and was != now:
            fields = [name for name in ImageFields.model_fields
                      if getattr(was, name) != getattr(now, name)]
            out.append(f"image {short_fingerprint(fp)}: {', '.join(fields)} changed")
    return out


def _alias_differences(before: ObservedSnapshot, after: ObservedSnapshot) -> list[str]:
    """The recorded aliases that were created, deleted or moved."""
    out: list[str] = []
    for name, was_at in before.aliases.items():
        now_at = after.aliases.get(name)
        if was_at == now_at:
            continue
        if was_at is None:
            out.append(f"alias {name!r} was created (on {short_fingerprint(now_at)})")
        elif now_at is None:
            out.append(f"alias {name!r} was deleted (was on {short_fingerprint(was_at)})")
        else:
            out.append(f"alias {name!r} moved from {short_fingerprint(was_at)} "
                       f"to {short_fingerprint(now_at)}")
    return out


def _setting(value: str | None) -> str:
    return "the default" if value is None else repr(value)


def check_matches(plan: Plan, config: Config, name: str) -> None:
    """Refuse to apply ``plan`` with ``config`` unless it was made from this very file.

    The owner must be the file's, the file's bytes those the plan was made from
    (else the plan is stale), every target it changes declared, and observed.
    """
    if plan.owner != config.owner:
        raise PlanFileError(f"{name} was made for owner {plan.owner!r}, but {config.path} "
                            f"declares owner {config.owner!r}")
    if plan.desired_digest is None or plan.observed is None:
        raise PlanFileError(f"{name} records neither the file it was made from nor what it "
                            "observed, so it cannot be checked; make a new plan with --out")
    if plan.desired_digest != config.digest:
        raise StalePlan(f"the saved plan {name} is stale: {config.path} has changed since the "
                        f"plan was made (sha256 {short_hex(plan.desired_digest)}, now "
                        f"{short_hex(config.digest)}); make a new plan")
    for target in touched(plan):
        if target not in config.targets:
            declared = ", ".join(sorted(config.targets)) or "none"
            raise PlanFileError(f"{name} changes target {target!r}, which {config.path} does "
                                f"not declare (it declares: {declared})")
        if target not in plan.observed:
            raise PlanFileError(f"{name} records nothing it observed on target {target!r}, so "
                                "it cannot be checked; make a new plan with --out")


def check_fresh(plan: Plan, states: Mapping[str, TargetState], name: str) -> None:
    """Raise :class:`StalePlan` listing every recorded item that moved since ``plan``.

    ``states`` are fresh observations of (at least) every target ``plan`` changes.
    """
    problems: list[str] = []
    observed = plan.observed or {}
    for target in touched(plan):
        before = observed[target]
        after = take(states[target], plan.owner, before.images, before.aliases)
        problems += [f"target {target!r}: {d}" for d in differences(before, after)]
    if problems:
        raise StalePlan("\n".join([
            f"the saved plan {name} is stale: the stores changed since it was made; "
            "nothing was changed; make a new plan", *problems]))
