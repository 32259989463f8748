"""A product's story for the dashboard: where each product of an upload stands, and a product's
full history (its photos, every suggestion with its model version, every review). Read-only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog_ai.db import (
    Category,
    LabelSource,
    ModelVersion,
    Product,
    ProductImage,
    Review,
    Suggestion,
)
from catalog_ai.db.queries import in_chunks
from catalog_ai.errors import CatalogAIError

__all__ = [
    "CatalogViewError",
    "ProductHistory",
    "ProductState",
    "ReviewRecord",
    "SuggestionRecord",
    "product_history",
    "product_states",
]


class CatalogViewError(CatalogAIError):
    """A view was asked for something the catalog does not have (an unknown product)."""


@dataclass(frozen=True)
class ProductState:
    product_id: int
    title: str
    status: str
    error: str | None
    category_path: str | None  # the final category
    suggestion_path: str | None  # the newest suggestion ("" when the model abstained)
    confidence: float | None
    status_changed_at: datetime


@dataclass(frozen=True)
class SuggestionRecord:
    suggestion_id: int
    model_version: str
    path: str
    confidence: float
    source: str
    open_set: bool
    levels: list[Any]
    created_at: datetime


@dataclass(frozen=True)
class ReviewRecord:
    review_id: int
    reviewer: str
    action: str
    category_path: str | None
    suggestion_id: int | None
    note: str | None
    created_at: datetime


@dataclass(frozen=True)
class ProductHistory:
    product_id: int
    title: str
    external_id: str | None
    status: str
    error: str | None
    category_path: str | None
    label_source: LabelSource | None
    attempts: int
    created_at: datetime
    status_changed_at: datetime
    image_paths: list[str] = field(default_factory=list)  # relative to the media store
    suggestions: list[SuggestionRecord] = field(default_factory=list)  # oldest first
    reviews: list[ReviewRecord] = field(default_factory=list)  # oldest first


def product_history(session: Session, product_id: int) -> ProductHistory:
    """A product with its photos, every suggestion (with its model version) and every review."""
    product = session.get(Product, product_id)
    if product is None:
        raise CatalogViewError(f"product {product_id} does not exist; pick one from the catalog")
    suggestions = session.execute(
        select(Suggestion, ModelVersion.version)
        .join(ModelVersion, ModelVersion.id == Suggestion.model_version_id)
        .where(Suggestion.product_id == product_id)
        .order_by(Suggestion.id)
    ).all()
    reviews = session.execute(
        select(Review, Category.path)
        .outerjoin(Category, Category.id == Review.category_id)
        .where(Review.product_id == product_id)
        .order_by(Review.id)
    ).all()
    images = session.scalars(
        select(ProductImage.stored_path)
        .where(ProductImage.product_id == product_id)
        .order_by(ProductImage.id)
    ).all()
    category = session.get(Category, product.category_id) if product.category_id else None
    return ProductHistory(
        product_id=product.id,
        title=product.title,
        external_id=product.external_id,
        status=str(product.status),
        error=product.error,
        category_path=category.path if category else None,
        label_source=product.label_source,
        attempts=product.attempts,
        created_at=product.created_at,
        status_changed_at=product.status_changed_at,
        image_paths=list(images),
        suggestions=[
            SuggestionRecord(
                suggestion_id=s.id,
                model_version=version,
                path=s.path,
                confidence=s.confidence,
                source=str(s.source),
                open_set=bool(s.open_set),
                levels=s.levels,
                created_at=s.created_at,
            )
            for s, version in suggestions
        ],
        reviews=[
            ReviewRecord(
                review_id=r.id,
                reviewer=r.reviewer,
                action=str(r.action),
                category_path=path,
                suggestion_id=r.suggestion_id,
                note=r.note,
                created_at=r.created_at,
            )
            for r, path in reviews
        ],
    )


def product_states(session: Session, product_ids: Sequence[int]) -> list[ProductState]:
    """Where each product of ``product_ids`` stands (in the given order; unknown ids left out)."""
    ids = list(dict.fromkeys(product_ids))
    found: dict[int, ProductState] = {}
    for chunk in in_chunks(ids):
        rows = session.execute(
            select(Product, Category.path, Suggestion.path, Suggestion.confidence)
            .outerjoin(Category, Category.id == Product.category_id)
            .outerjoin(Suggestion, Suggestion.id == Product.suggestion_id)
            .where(Product.id.in_(chunk))
        ).all()
        for p, category_path, suggestion_path, confidence in rows:
            found[p.id] = ProductState(
                product_id=p.id,
                title=p.title,
                status=str(p.status),
                error=p.error,
                category_path=category_path,
                suggestion_path=suggestion_path,
                confidence=confidence,
                status_changed_at=p.status_changed_at,
            )
    return [found[i] for i in ids if i in found]
