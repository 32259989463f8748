"""The review queue: products waiting for a person, least confident first, with filters (a
branch, a model version, a source), and how many there are.

Read from each product's current suggestion (``products.suggestion_id``, migration
``0008_scale``) and the partial index of waiting products by confidence, so a page costs the
same at 1,000 products as at 1,000,000 (docs/BENCHMARKS.md, issue 16).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from catalog_ai.db import ModelVersion, Product, ProductStatus, Suggestion
from catalog_ai.db.queries import first_photo_paths, in_branch
from catalog_ai.services.status_counts import total_status_counts
from catalog_ai.taxonomy import SEPARATOR

__all__ = [
    "COUNT_CAP",
    "WHOLE_QUEUE",
    "QueueFilter",
    "QueueItem",
    "queue_count",
    "queue_query",
    "review_queue",
]


@dataclass(frozen=True)
class QueueFilter:
    branch: str | None = None  # a category path: only suggestions inside this branch
    model_version: str | None = None
    source: str | None = None  # head | prototype | abstain | open_set


#: The filter that lets everything through.
WHOLE_QUEUE = QueueFilter()


@dataclass(frozen=True)
class QueueItem:
    product_id: int
    title: str
    image_path: str | None
    suggestion_id: int
    model_version: str
    path: str
    confidence: float
    levels: list
    source: str
    open_set: bool


def queue_query(flt: QueueFilter) -> Select[Product, Suggestion, str]:
    """The waiting products that pass ``flt``, with their current suggestion and its model
    version's name; order it and page it (see :func:`review_queue`)."""
    # The product's current suggestion is a column of its row (``products.suggestion_id``): the
    # first page is the front of the partial index on (suggestion_confidence, id) of waiting
    # products, joined row by row; nothing is aggregated over the catalogue.
    q = (
        select(Product, Suggestion, ModelVersion.version)
        .join(Suggestion, Suggestion.id == Product.suggestion_id)
        .join(ModelVersion, ModelVersion.id == Suggestion.model_version_id)
        .where(Product.status == ProductStatus.SUGGESTED)
    )
    if flt.branch:
        q = q.where(in_branch(Suggestion.path, flt.branch, separator=SEPARATOR))
    if flt.model_version:
        q = q.where(ModelVersion.version == flt.model_version)
    if flt.source == "open_set":
        q = q.where(Suggestion.open_set.is_(True))
    elif flt.source:
        q = q.where(Suggestion.source == flt.source)
    return q


def review_queue(
    session: Session, *, flt: QueueFilter = WHOLE_QUEUE, limit: int = 20, offset: int = 0
) -> list[QueueItem]:
    """Products waiting for review, least confident first."""
    rows = session.execute(
        queue_query(flt)
        .order_by(Product.suggestion_confidence, Product.id)
        .limit(limit)
        .offset(offset)
    ).all()
    images = first_photo_paths(session, [p.id for p, _, _ in rows])
    return [
        QueueItem(
            product_id=p.id,
            title=p.title,
            image_path=images.get(p.id),
            suggestion_id=s.id,
            model_version=version,
            path=s.path,
            confidence=s.confidence,
            levels=s.levels,
            source=str(s.source),
            open_set=bool(s.open_set),
        )
        for p, s, version in rows
    ]


#: How far :func:`queue_count` counts a filtered queue (see there).
COUNT_CAP = 10_000


def queue_count(
    session: Session, *, flt: QueueFilter = WHOLE_QUEUE, cap: int | None = COUNT_CAP
) -> int:
    """How many products wait for review. The whole queue's count is exact (the database keeps
    the count of ``suggested`` products, :mod:`catalog_ai.services.status_counts`). A filtered
    queue is counted up to ``cap`` (None: no cap): a result equal to ``cap`` means "at least
    that many" (shown as "10,000+"); counting a branch of 600,000 waiting products exactly
    would read all of them on every page view."""
    if flt == WHOLE_QUEUE:
        return total_status_counts(session)[ProductStatus.SUGGESTED.value]
    query = queue_query(flt).with_only_columns(Product.id)
    if cap is not None:
        query = query.limit(cap)
    return session.scalar(select(func.count()).select_from(query.subquery())) or 0
