"""Shapes several resources share: a model's Decision, a search hit."""

from __future__ import annotations

from pydantic import BaseModel, Field

from catalog_ai.api.problems import ProblemBody

__all__ = ["CandidateOut", "DecisionOut", "HitOut", "ProblemBody"]


class CandidateOut(BaseModel):
    path: str
    probability: float = Field(ge=0.0, le=1.0)


class DecisionOut(BaseModel):
    """A model's decision on a photo or product, key for key as ``Decision.to_dict`` writes it
    (and as a ``suggestions`` row holds it)."""

    path: str = Field(description="the chosen category; empty when the model abstains")
    depth: int = Field(ge=0, description="0 when abstaining")
    confidence: float = Field(ge=0.0, le=1.0, description="calibrated, of the chosen category")
    leaf_path: str = Field(
        description="the most probable leaf, even when the decision stopped higher"
    )
    leaf_confidence: float = Field(ge=0.0, le=1.0)
    levels: list[list[CandidateOut]] = Field(description="per depth (1 first), the top-k")
    source: str = Field(description="head | prototype | abstain")
    model_version: str
    auto_accept: bool = Field(description="confident enough to be accepted without review")
    open_set: bool = Field(description="possibly a category the model does not know")


class HitOut(BaseModel):
    """A product a search found, with the photo that matched (or its first photo)."""

    product_id: int
    score: float
    title: str
    category_path: str | None
    image_path: str | None = Field(description="the photo's file in the media store")
