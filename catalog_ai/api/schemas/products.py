"""Request and response shapes of ``/v1/products`` (pydantic, never ORM models), and the
conversions from the services' answers (``accepted_out``, ``product_out``, ``summary_out``)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from catalog_ai.services.products import ProductCreated
    from catalog_ai.services.products_query import ProductDetail, ProductSummary

__all__ = [
    "CandidateRow",
    "FinalLabelOut",
    "HistoryOut",
    "PhotoOut",
    "PhotoResultOut",
    "ProductAcceptedOut",
    "ProductOut",
    "ProductPageOut",
    "ProductSummaryOut",
    "ReviewRecordOut",
    "SuggestionOut",
    "SuggestionRecordOut",
    "accepted_out",
    "photo_url",
    "product_out",
    "product_url",
    "summary_out",
]


class PhotoResultOut(BaseModel):
    """What became of one photo of a ``POST /v1/products``."""

    name: str = Field(description="the uploaded file's name")
    image_id: int | None = Field(description="the stored photo; null when it was not stored")
    url: str | None = Field(description="where its bytes are served; null when not stored")
    duplicate_of: int | None = Field(description="the product that already has these bytes")
    problem: str | None = Field(description="too_large | not_a_photo | duplicate; null: stored")
    error: str | None = Field(description="why it was not stored, and the fix")


class ProductAcceptedOut(BaseModel):
    """The answer to ``POST /v1/products`` (``202``: classification runs in the background)."""

    id: int
    url: str = Field(description="the product: GET it to follow its status and decision")
    created: bool = Field(
        description="false when the product existed already (same external_id, the same photos "
        "again, or a replayed Idempotency-Key)"
    )
    status: str = Field(description="pending | accepted | failed | ... (see GET url)")
    photos: list[PhotoResultOut]


class PhotoOut(BaseModel):
    id: int
    position: int = Field(description="its place among the product's photos, 0 first")
    width: int
    height: int
    size_bytes: int
    format: str = Field(description="the image format (JPEG, PNG, WEBP, ...)")
    content_hash: str = Field(description="sha256 of the file")
    url: str = Field(description="GET it for the photo's bytes")
    source_url: str | None = Field(description="where a shop feed fetched it from")


class CandidateRow(BaseModel):
    """One candidate of one depth, as the suggestion row holds it."""

    model_config = ConfigDict(extra="allow")

    path: str
    probability: float


class SuggestionOut(BaseModel):
    """The newest decision, exactly as its ``suggestions`` row holds it."""

    suggestion_id: int
    path: str = Field(description="the suggested category; empty when the model abstained")
    category_id: int | None
    levels: list[list[CandidateRow]] = Field(description="per depth (1 first), the top-k")
    confidence: float = Field(description="calibrated probability of the suggested path")
    source: str = Field(description="head | prototype | abstain")
    flags: dict[str, bool] = Field(
        description="open_set: maybe a category the model does not know; abstained: no "
        "category even at the top; near_duplicate: looks like another catalogue product"
    )
    model_version: str
    memory_revision: int | None = Field(description="the prototype-memory revision it used")
    created_at: datetime


class FinalLabelOut(BaseModel):
    """The final category (or the rejection) and its provenance."""

    category_id: int | None
    category_path: str | None = Field(description="null when a reviewer rejected the product")
    category_external_id: str | None = Field(
        description="the category's id in its tree (a Google id, a Shopify GID), when it has one"
    )
    label_source: str = Field(description="import | review | fewshot | model")
    reviewed_by: str | None = Field(description="the reviewer, when a person reviewed it")
    reviewed_at: datetime | None
    review_action: str | None = Field(
        description="accept | accept_partial | correct | new_category | reject"
    )


class SuggestionRecordOut(BaseModel):
    suggestion_id: int
    model_version: str
    path: str
    confidence: float
    source: str
    open_set: bool
    levels: list[list[CandidateRow]]
    created_at: datetime


class ReviewRecordOut(BaseModel):
    review_id: int
    reviewer: str
    action: str
    category_path: str | None
    suggestion_id: int | None
    note: str | None
    created_at: datetime


class HistoryOut(BaseModel):
    attempts: int = Field(description="how often a worker tried to classify it")
    suggestions: list[SuggestionRecordOut] = Field(description="every suggestion, oldest first")
    reviews: list[ReviewRecordOut] = Field(description="every review, oldest first")


class ProductOut(BaseModel):
    id: int
    url: str
    title: str
    description: str
    external_id: str | None
    attributes: dict[str, Any] = Field(description="what a shop feed said beside the photos")
    status: str = Field(
        description="pending | processing | suggested | accepted | rejected | failed"
    )
    error: str | None = Field(description="why it failed, when it did")
    created_at: datetime
    updated_at: datetime
    status_changed_at: datetime
    duplicate_of: int | None = Field(description="a near-duplicate catalogue product")
    duplicate_score: float | None
    photos: list[PhotoOut]
    decision: SuggestionOut | None = Field(description="the newest suggestion; null before one")
    label: FinalLabelOut | None = Field(description="the final category; null while undecided")
    history: HistoryOut


class ProductSummaryOut(BaseModel):
    id: int
    url: str
    title: str
    external_id: str | None
    status: str
    category_path: str | None = Field(description="the final category")
    label_source: str | None
    suggestion_path: str | None = Field(description="the newest suggestion's path")
    confidence: float | None
    source: str | None = Field(description="the newest suggestion's source")
    open_set: bool | None
    model_version: str | None = Field(description="of the newest suggestion")
    photo_url: str | None = Field(description="the first photo's bytes")
    created_at: datetime


class ProductPageOut(BaseModel):
    items: list[ProductSummaryOut]
    next: str | None = Field(description="the next page (same filters); null on the last page")


def product_url(product_id: int) -> str:
    return f"/v1/products/{product_id}"


def photo_url(product_id: int, image_id: int) -> str:
    return f"/v1/products/{product_id}/photos/{image_id}"


def accepted_out(result: ProductCreated) -> ProductAcceptedOut:
    pid = result.product_id
    assert pid is not None
    return ProductAcceptedOut(
        id=pid,
        url=product_url(pid),
        created=result.created,
        status=result.status,
        photos=[
            PhotoResultOut(
                name=p.name,
                image_id=p.image_id,
                url=photo_url(pid, p.image_id) if p.image_id is not None else None,
                duplicate_of=p.duplicate_of,
                problem=p.problem,
                error=p.error,
            )
            for p in result.photos
        ],
    )


def product_out(d: ProductDetail) -> ProductOut:
    decision = None
    if d.decision is not None:
        s = d.decision
        flags = {
            "open_set": s.open_set,
            "abstained": s.source == "abstain",
            "near_duplicate": d.duplicate_of is not None,
        }
        decision = SuggestionOut(flags=flags, **_fields(s, SuggestionOut))
    h = d.history
    return ProductOut(
        id=d.product_id,
        url=product_url(d.product_id),
        photos=[
            PhotoOut(id=p.image_id, url=photo_url(d.product_id, p.image_id), **_fields(p, PhotoOut))
            for p in d.photos
        ],
        decision=decision,
        label=FinalLabelOut(**_fields(d.label, FinalLabelOut)) if d.label else None,
        history=HistoryOut(
            attempts=h.attempts,
            suggestions=[
                SuggestionRecordOut(**_fields(r, SuggestionRecordOut)) for r in h.suggestions
            ],
            reviews=[ReviewRecordOut(**_fields(r, ReviewRecordOut)) for r in h.reviews],
        ),
        **_fields(d, ProductOut),
    )


def summary_out(item: ProductSummary) -> ProductSummaryOut:
    photo = photo_url(item.product_id, item.first_image_id) if item.first_image_id else None
    return ProductSummaryOut(
        id=item.product_id,
        url=product_url(item.product_id),
        photo_url=photo,
        **_fields(item, ProductSummaryOut),
    )


_SET_HERE = {"id", "url", "photos", "decision", "label", "history", "flags", "photo_url"}


def _fields(obj: object, model: type[Any]) -> dict[str, Any]:
    """The attributes of ``obj`` that ``model`` has a field of the same name for (those the
    converters above set themselves left out)."""
    names = set(model.model_fields) - _SET_HERE
    return {name: getattr(obj, name) for name in names if hasattr(obj, name)}
