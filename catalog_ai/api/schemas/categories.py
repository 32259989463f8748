"""Bodies of ``GET /v1/categories``."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["CategoryOut", "CategoryTreeOut"]


class CategoryOut(BaseModel):
    """One category and the figures of its branch (it and everything below it)."""

    id: int
    external_id: str | None = Field(
        description="the tree's own id: a Google product category id, a Shopify GID, a CSV id"
    )
    path: str = Field(examples=["Fruit > Apple > Granny-Smith"])
    name: str
    depth: int = Field(ge=1)
    parent_path: str | None = Field(description="None for a top-level category")
    products: int = Field(ge=0, description="accepted products in the branch")
    labelled_by_people: int = Field(ge=0, description="of those, labelled by a person")
    classified: int = Field(ge=0, description="products whose newest suggestion is in the branch")
    decided: int = Field(ge=0, description="of those, accepted or rejected")
    accepted_as_suggested: int = Field(ge=0)
    reviewed: int = Field(ge=0, description="reviewer verdicts on suggestions in the branch")
    reviewed_correct: int = Field(ge=0, description="of those, the suggestion as it was")
    acceptance_rate: float | None = Field(description="accepted_as_suggested / decided")
    accuracy: float | None = Field(description="reviewed_correct / reviewed")


class CategoryTreeOut(BaseModel):
    categories: list[CategoryOut] = Field(description="in tree order: a parent before its children")
    total: int = Field(ge=0, description="categories listed")
