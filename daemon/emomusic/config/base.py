"""The base of every settings section: frozen, unknown keys rejected."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


VA = Annotated[tuple[float, float], Field(description="(valence, arousal), each in [-1, 1]")]
