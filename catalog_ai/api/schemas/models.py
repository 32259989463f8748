"""Bodies of ``GET /v1/models`` and ``POST /v1/models/{version}/activate``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

__all__ = ["ModelListOut", "ModelOut"]


class ModelOut(BaseModel):
    version: str
    backbone: str
    is_active: bool
    parent_version: str | None = Field(description="the version it was derived from")
    created_at: datetime
    activated_at: datetime | None
    held_out_leaf_accuracy: float | None = Field(
        description="leaf accuracy on the held-out photos when it was trained"
    )
    suggested: int = Field(ge=0, description="products with a suggestion from this version")
    remaining: int = Field(ge=0, description="products this version should still classify")


class ModelListOut(BaseModel):
    models: list[ModelOut] = Field(description="oldest first")
    active: str | None = Field(description="the active version, if one is")
