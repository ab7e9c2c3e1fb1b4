"""The base of every value model: immutable, and strict about unknown keys."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """A frozen pydantic model that rejects unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Stored(BaseModel):
    """A frozen model for records this tool stores on daemons.

    Unknown keys are ignored, not rejected: a record written by a newer version of
    the tool must still read as the same ownership, never as an empty one.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")
