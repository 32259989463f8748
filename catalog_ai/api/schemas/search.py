"""Body of ``POST /v1/search``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from catalog_ai.api.schemas.common import HitOut

__all__ = ["SearchOut"]


class SearchOut(BaseModel):
    mode: Literal["photo", "product", "text"] = Field(description="what the query was")
    model_version: str | None = Field(description="the model whose embeddings were searched")
    hits: list[HitOut] = Field(description="best first")
