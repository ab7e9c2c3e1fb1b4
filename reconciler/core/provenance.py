"""Stamp a plan with the git commit that declared it (pure; discovery is ``adapters.git``).

Invariant: provenance is information for people (``status``).  It is stamped on
the plan's records after planning; the planner never sees or compares it, so a
new commit that changes nothing else never makes a plan show changes.
"""

from __future__ import annotations

from reconciler.model.observed import Inventory, Provenance
from reconciler.model.plan import Plan


def stamp(plan: Plan, provenance: Provenance | None) -> Plan:
    """``plan`` recording ``provenance``, on itself and on every record apply will write.

    Records in ``image.download``/``image.adopt``/``image.update`` changes and in the
    final ``ownership`` inventories carry it; nothing else changes.
    """
    if provenance is None:
        return plan.model_copy(update={"provenance": None})
    changes = tuple(
        c.model_copy(update={"record": c.record.model_copy(update={"provenance": provenance})})
        if c.record is not None else c
        for c in plan.changes
    )
    ownership = {t: _stamped(inv, provenance) for t, inv in plan.ownership.items()}
    return plan.model_copy(update={"changes": changes, "ownership": ownership,
                                   "provenance": provenance})


def _stamped(inventory: Inventory, provenance: Provenance) -> Inventory:
    images = {fp: rec.model_copy(update={"provenance": provenance})
              for fp, rec in inventory.images.items()}
    return inventory.model_copy(update={"images": images})
