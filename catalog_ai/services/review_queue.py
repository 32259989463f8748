"""The review queue: products waiting for a person, least confident first, with filters (a
branch, a model version, a source), and how many there are.

Read from the copy of each product's current suggestion on its own row (``products.
suggestion_*``, kept by a trigger, migration ``0008_scale``) and the partial indexes over the
waiting products, so that a page costs about the same at 1,000 products as at 1,000,000
(docs/BENCHMARKS.md, issue 16). A page is found in two steps: the ids of its rows, from
``products`` alone (the front of the queue index, or of the filter's index: source, model
version and open set are an equality before the queue's order; a branch is a walk down the
queue index, which holds the path, or for a rare branch its range of the path index, sorted),
then those rows with their suggestions. Filtering on the joined ``suggestions`` row
instead made PostgreSQL misjudge the filter's selectivity by 10,000x at 1M products and sort
65,000 rows to show 11.

A filtered queue is counted up to :data:`COUNT_CAP` ("1,000+" beyond it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, false, func, or_, select
from sqlalchemy.orm import Session

from catalog_ai.db import ModelVersion, Product, ProductStatus, Suggestion
from catalog_ai.db.queries import first_photo_paths
from catalog_ai.services.status_counts import total_status_counts
from catalog_ai.taxonomy import SEPARATOR

__all__ = [
    "COUNT_CAP",
    "WHOLE_QUEUE",
    "QueueFilter",
    "QueueItem",
    "card_fields",
    "queue_count",
    "queue_keys",
    "queue_query",
    "review_queue",
]

#: A filtered queue is counted up to this many.
COUNT_CAP = 1_000


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


def _conditions(session: Session, flt: QueueFilter) -> list[ColumnElement[bool]] | None:
    """The filter on the waiting products' own columns; None when it selects nothing (an
    unknown model version)."""
    out: list[ColumnElement[bool]] = [Product.status == ProductStatus.SUGGESTED]
    if flt.model_version:
        version_id = session.scalar(
            select(ModelVersion.id).where(ModelVersion.version == flt.model_version)
        )
        if version_id is None:
            return None
        out.append(Product.suggestion_model_version_id == version_id)
    if flt.source == "open_set":
        # The bare column: the partial index's own predicate (``IS true`` would not match it).
        out.append(cast("ColumnElement[bool]", Product.suggestion_open_set.expression))
    elif flt.source:
        out.append(Product.suggestion_source == flt.source)
    return out


def _below(branch: str) -> ColumnElement[bool]:
    # ``%`` and ``_`` in a category name are plain characters, not wildcards.
    return Product.suggestion_path.startswith(branch + SEPARATOR, autoescape=True)


def queue_keys(
    session: Session,
    flt: QueueFilter,
    limit: int | None,
    offset: int = 0,
    *,
    ordered: bool = True,
    most_confident_first: bool = False,
    min_confidence: float | None = None,
) -> Select[float | None, int]:
    """``(confidence, id)`` of the waiting products ``flt`` passes, in queue order (or the most
    confident first), from ``products`` alone; ``min_confidence`` leaves out the less confident
    and the abstentions (nothing to accept)."""
    where = _conditions(session, flt)
    if where is None:
        where = [false()]
    if min_confidence is not None:
        where += [Product.suggestion_confidence >= min_confidence, Product.suggestion_path != ""]
    keys = (Product.suggestion_confidence, Product.id)
    if flt.branch:
        # The queue index holds the path too: a common branch is a walk down it that reads the
        # index alone; a rare one is its range of the path index, sorted (PostgreSQL picks).
        where.append(or_(Product.suggestion_path == flt.branch, _below(flt.branch)))
    query = select(*keys).where(*where)
    if ordered:
        query = query.order_by(*(k.desc() for k in keys) if most_confident_first else keys)
    if limit is not None:
        query = query.limit(limit)
    return query.offset(offset) if offset else query


def queue_query(flt: QueueFilter = WHOLE_QUEUE) -> Select[Product, Suggestion, str]:
    """Waiting products with their current suggestion and its model version's name (``flt``'s
    branch, version and source applied on the copies on the product's row); order it and page
    it, or use :func:`review_queue`."""
    q = (
        select(Product, Suggestion, ModelVersion.version)
        .join(Suggestion, Suggestion.id == Product.suggestion_id)
        .join(ModelVersion, ModelVersion.id == Suggestion.model_version_id)
        .where(Product.status == ProductStatus.SUGGESTED)
    )
    if flt.branch:
        q = q.where(or_(Product.suggestion_path == flt.branch, _below(flt.branch)))
    if flt.model_version:
        q = q.where(ModelVersion.version == flt.model_version)
    if flt.source == "open_set":
        q = q.where(cast("ColumnElement[bool]", Product.suggestion_open_set.expression))
    elif flt.source:
        q = q.where(Product.suggestion_source == flt.source)
    return q


def review_queue(
    session: Session, *, flt: QueueFilter = WHOLE_QUEUE, limit: int = 20, offset: int = 0
) -> list[QueueItem]:
    """Products waiting for review, least confident first (see the module docstring)."""
    ids = [pid for _, pid in session.execute(queue_keys(session, flt, limit, offset))]
    if not ids:
        return []
    rows = session.execute(
        queue_query().where(Product.id.in_(ids)).order_by(Product.suggestion_confidence, Product.id)
    ).all()
    images = first_photo_paths(session, ids)
    return [QueueItem(**card_fields(p, s, version, images.get(p.id))) for p, s, version in rows]


def card_fields(
    product: Product, suggestion: Suggestion, version: str, image_path: str | None
) -> dict[str, Any]:
    """What a review card shows of a product and its suggestion (:class:`QueueItem`'s fields;
    the audit queue's items add their audit's id)."""
    return {
        "product_id": product.id,
        "title": product.title,
        "image_path": image_path,
        "suggestion_id": suggestion.id,
        "model_version": version,
        "path": suggestion.path,
        "confidence": suggestion.confidence,
        "levels": suggestion.levels,
        "source": str(suggestion.source),
        "open_set": bool(suggestion.open_set),
    }


def queue_count(session: Session, *, flt: QueueFilter = WHOLE_QUEUE) -> int:
    """How many products wait for review. The whole queue's count is exact (the database keeps
    the count of ``suggested`` products, :mod:`catalog_ai.services.status_counts`). A filtered
    queue is counted up to :data:`COUNT_CAP`: a result above it means "more than that" (shown
    as "1,000+"); counting a branch of 600,000 waiting products exactly would read all of them
    on every page view."""
    if flt == WHOLE_QUEUE:
        return total_status_counts(session)[ProductStatus.SUGGESTED.value]
    # Counted in queue order although a count needs none: the order is what makes SQLite take
    # the filter's own index (unordered, it counted through the status index: 120 ms for a
    # source, 75 ms for a small branch at 100k products, against 12 and 25). Not for the open
    # set, where SQLite's ordered plan walks the whole queue (185 ms, against 48 unordered).
    # PostgreSQL is as fast either way (docs/BENCHMARKS.md, issue 16).
    ordered = flt.source != "open_set"
    keys = queue_keys(session, flt, COUNT_CAP + 1, ordered=ordered).subquery()
    return session.scalar(select(func.count()).select_from(keys)) or 0
