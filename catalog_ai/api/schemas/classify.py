"""Body of ``POST /v1/classify``."""

from __future__ import annotations

from pydantic import BaseModel, Field

from catalog_ai.api.schemas.common import DecisionOut

__all__ = ["ClassifyOut"]


class ClassifyOut(BaseModel):
    decision: DecisionOut = Field(description="exactly as a stored suggestion would hold it")
    memory_revision: int | None = Field(
        description="the revision of the model's prototype memory it used (None: no memory)"
    )
