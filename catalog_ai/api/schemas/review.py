"""Request and response shapes of the review queue and verdicts (pydantic, never ORM models)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from catalog_ai.api.schemas.products import CandidateRow

__all__ = ["AuditIn", "AuditOut", "QueueItemOut", "QueueOut", "ReviewIn", "ReviewOut"]


class QueueItemOut(BaseModel):
    product_id: int
    url: str = Field(description="the product in full")
    title: str
    photo_url: str | None = Field(description="its first photo's bytes")
    suggestion_id: int
    model_version: str
    path: str = Field(description="the suggested category; empty when the model abstained")
    confidence: float
    levels: list[list[CandidateRow]]
    source: str = Field(description="head | prototype | abstain")
    open_set: bool
    is_audit: bool = Field(
        default=False,
        description="an audit: auto-accepted (path is its label now), drawn at random for a "
        "person to check; answer with POST /v1/products/{id}/audit",
    )


class QueueOut(BaseModel):
    total: int = Field(description="how many products wait for review under these filters")
    items: list[QueueItemOut] = Field(description="least confident first")


class ReviewIn(BaseModel):
    """A verdict. ``accept``: the suggested path (with ``depth``: only its first ``depth``
    levels); ``move``: into the existing category ``category_path``; ``new_category``: create
    ``category_path`` (and missing ancestors) for this product; ``reject``: it belongs nowhere."""

    action: Literal["accept", "move", "new_category", "reject"]
    depth: int | None = Field(
        default=None, ge=1, le=64, description="accept only: accept down to this depth"
    )
    category_path: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="move and new_category: the category, e.g. 'Fruit > Apple'",
    )
    note: str | None = Field(default=None, max_length=4000)


class ReviewOut(BaseModel):
    review_id: int
    product_id: int
    url: str = Field(description="the product, now with its final label")
    action: str = Field(description="accept | accept_partial | correct | new_category | reject")
    category_path: str | None = Field(description="the final category; null after a rejection")
    reviewer: str = Field(description="the owner of the API key that reviewed")
    status: str = Field(description="accepted | rejected")
    created_at: datetime


class AuditIn(BaseModel):
    """The verdict on an audited product: no ``category_path`` (or the auto-accepted one): it is
    right; another existing category: it was wrong and moves there."""

    category_path: str | None = Field(default=None, min_length=1, max_length=4096)
    note: str | None = Field(default=None, max_length=4000)


class AuditOut(BaseModel):
    audit_id: int
    product_id: int
    url: str = Field(description="the product, now labelled by the person")
    verdict: str = Field(description="correct | incorrect")
    category_path: str = Field(description="the category the person gave")
    reviewer: str = Field(description="the owner of the API key that answered")
    resolved_at: datetime
