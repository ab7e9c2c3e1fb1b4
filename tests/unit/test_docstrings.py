"""Field descriptions come from attribute docstrings only when a schema is made."""

from __future__ import annotations

import subprocess
import sys

from pydantic import Field

from reconciler.model.base import Frozen
from reconciler.model.docstrings import attribute_docstrings, describe_fields


class _Parent(Frozen):
    kept: int = 0
    """What the parent says
       about it."""
    own: str = Field(default="", description="Its own words win.")
    """Not this."""


class _Child(_Parent):
    extra: bool = False
    """The child's field."""


def test_the_docstring_under_a_field_is_read_cleaned() -> None:
    assert attribute_docstrings(_Parent) == {"kept": "What the parent says\nabout it.",
                                             "own": "Not this."}


def test_fields_get_their_docstrings_and_inherited_ones_their_parents() -> None:
    describe_fields(_Parent)
    schema = _Child.model_json_schema()
    assert schema["properties"]["kept"]["description"] == "What the parent says\nabout it."
    assert schema["properties"]["own"]["description"] == "Its own words win."
    assert schema["properties"]["extra"]["description"] == "The child's field."


def test_start_up_reads_no_docstrings() -> None:
    """Importing the models leaves docstring-only fields undescribed: no model's source
    is read at start-up (``use_attribute_docstrings`` read every model's, at every
    start-up); the schema generator describes them when it runs."""
    probe = ("from reconciler.model.plan import Untouched\n"
             "print(Untouched.model_fields['target'].description)\n"
             "from reconciler.model import schemas\n"
             "schemas.plan_schema()\n"
             "print(Untouched.model_fields['target'].description)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    assert done.stdout.splitlines() == ["None", "The target holding the image."]
