"""The pure core: builds, ownership, requirements and the planner; no I/O."""
