"""Bodies of ``GET /v1/models``, ``POST /v1/models/{version}/activate``, ``POST
/v1/models/compare`` and ``POST /v1/models/{version}/promote-if-better``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

__all__ = [
    "CompareIn",
    "CompareOut",
    "FigureOut",
    "LiveOut",
    "ModelListOut",
    "ModelOut",
    "PromoteIn",
    "PromotionOut",
    "ProportionOut",
]


class ProportionOut(BaseModel):
    estimate: float
    low: float = Field(description="95 % interval, lower end")
    high: float = Field(description="95 % interval, upper end")
    n: int = Field(ge=0, description="people's verdicts it rests on")


class LiveOut(BaseModel):
    """What people's verdicts on this version's suggestions say (never the training photos)."""

    auto_accept_precision: ProportionOut | None = Field(
        description="share of resolved audits (a random sample of its auto-accepts) a person "
        "confirmed; Wilson interval; null before the first audit is resolved"
    )
    leaf_accuracy: ProportionOut | None = Field(
        description="suggestions kept as they stood, over all its uploads: audits and reviews "
        "weighted by stratum (auto-accepted / sent to review by confidence band); null while "
        "a stratum has no verdict"
    )
    auto_accepted: int = Field(ge=0)
    audited: int = Field(ge=0, description="auto-accepts drawn for audit")
    audits_resolved: int = Field(ge=0)
    sent_to_review: int = Field(ge=0)
    reviewed: int = Field(ge=0)


class PromotionOut(BaseModel):
    version: str
    against: str | None = Field(description="the active version it was compared with")
    promoted: bool
    reason: str
    decided_at: datetime | None = None


class ModelOut(BaseModel):
    version: str
    backbone: str
    is_active: bool
    parent_version: str | None = Field(description="the version it was derived from")
    created_at: datetime
    activated_at: datetime | None
    live: LiveOut | None = Field(default=None, description="live precision from audits, reviews")
    held_out_leaf_accuracy: float | None = Field(
        description="train hold-out: leaf accuracy on photos held out of its training set when "
        "it was trained (they share its photo sessions: see live for the shop's uploads)"
    )
    promotion: PromotionOut | None = Field(
        default=None, description="the last promote-if-better decision about it"
    )
    suggested: int = Field(ge=0, description="products with a suggestion from this version")
    remaining: int = Field(ge=0, description="products this version should still classify")


class ModelListOut(BaseModel):
    models: list[ModelOut] = Field(description="oldest first")
    active: str | None = Field(description="the active version, if one is")


class CompareIn(BaseModel):
    a: str = Field(min_length=1, max_length=64, description="a version (e.g. the active one)")
    b: str = Field(min_length=1, max_length=64, description="the version compared with it")
    recent: int = Field(
        default=200, ge=1, le=2000, description="the most recent person-labelled products"
    )
    bootstrap: int = Field(default=1000, ge=10, le=10_000)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)


class FigureOut(BaseModel):
    estimate: float | None
    low: float | None = Field(description="95 % paired-bootstrap interval, lower end")
    high: float | None


class CompareOut(BaseModel):
    a: str
    b: str
    n: int = Field(description="products people labelled after both versions were made")
    failed: int = Field(description="products left out: a photo could not be used")
    labelled_after: str
    leaf_accuracy_a: FigureOut
    leaf_accuracy_b: FigureOut
    difference: FigureOut = Field(description="leaf accuracy b - a")
    auto_accept_precision_a: FigureOut
    auto_accept_precision_b: FigureOut
    coverage_a: FigureOut
    coverage_b: FigureOut


class PromoteIn(BaseModel):
    margin: float = Field(
        default=0.01, ge=0.0, le=1.0, description="leaf-accuracy gain it must win by"
    )
    recent: int = Field(default=500, ge=1, le=2000)
    bootstrap: int = Field(default=1000, ge=10, le=10_000)
