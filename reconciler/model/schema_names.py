"""The names of the JSON Schemas ``incus-images schema NAME`` prints.

Apart from :mod:`reconciler.model.schemas` (which generates them from every model)
so that the command line can list them without importing those models.
"""

from __future__ import annotations

NAMES = ("desired-state", "plan", "lock", "status")
"""The schemas ``incus-images schema NAME`` prints, by NAME."""
