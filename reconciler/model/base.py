"""The base of every value model: immutable, and strict about unknown keys.

A field's docstring (the string literal under it) is its description in the JSON
Schemas (:mod:`reconciler.model.docstrings`, applied when a schema is made), so what
a reader of the code sees is what an editor shows.  A field has no title unless it
sets one (pydantic's automatic ``"Download Bytes"`` titles say nothing the key does
not): ``_no_title`` marks it, and :mod:`reconciler.model.schemas` drops the mark.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


def _no_title(_name: str, _info: Any) -> str:
    return ""


class Frozen(BaseModel):
    """A frozen pydantic model that rejects unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", field_title_generator=_no_title,
                              defer_build=True)


class Stored(BaseModel):
    """A frozen model for records this tool stores on daemons.

    Unknown keys are ignored, not rejected: a record written by a newer version of
    the tool must still read as the same ownership, never as an empty one.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", field_title_generator=_no_title,
                              defer_build=True)
