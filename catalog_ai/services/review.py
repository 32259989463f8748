"""Staff review of suggestions: the queue, and every verdict (accept, accept down to a depth,
correct, new category, reject, bulk accept).

Every verdict needs a signed-in reviewer's name and is recorded as a :class:`Review`. A product
is changed only while it is still waiting (``suggested``): two reviewers acting on the same card
cannot both win; the second gets a :class:`ReviewConflict`. An accepted or corrected product is
labelled ``LabelSource.REVIEW``, and its photo becomes an example of its category in a new
revision of the active model's prototype memory at once (see :mod:`catalog_ai.services.versions`).
Each verdict that gives a category emits ``product.accepted`` to subscribed webhooks in the same
transaction; ``dispatcher`` (optional everywhere: None leaves the sending to the sweep) sends it
after the commit. A rejection emits nothing: it is not one of the webhook event types.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from catalog_ai.db import (
    Category,
    LabelSource,
    Product,
    ProductImage,
    ProductStatus,
    Review,
    ReviewAction,
    Suggestion,
)
from catalog_ai.db.queries import first_photo_ids
from catalog_ai.errors import CatalogAIError, TaxonomyError
from catalog_ai.photos.store import MediaStore
from catalog_ai.services.catalog_import import sync_taxonomy
from catalog_ai.services.review_queue import (
    COUNT_CAP,
    WHOLE_QUEUE,
    QueueFilter,
    QueueItem,
    queue_count,
    queue_keys,
    review_queue,
)
from catalog_ai.services.versions import record_review_revision
from catalog_ai.services.webhook_payloads import emit_reviewed
from catalog_ai.settings import get_settings
from catalog_ai.taxonomy import SEPARATOR, Taxonomy, parse_path

if TYPE_CHECKING:
    from catalog_ai.dispatch import Dispatcher

__all__ = [
    "BULK_LIMIT",
    "COUNT_CAP",
    "WHOLE_QUEUE",
    "QueueFilter",
    "QueueItem",
    "ReviewConflict",
    "ReviewError",
    "accept",
    "assign_new_category",
    "bulk_accept",
    "bulk_preview",
    "correct",
    "queue_count",
    "reject",
    "review_queue",
    "reviewed_examples",
]


class ReviewError(CatalogAIError):
    """A verdict cannot be recorded (no reviewer, unknown category, nothing to review)."""


class ReviewConflict(ReviewError):
    """Someone else already decided on this product."""


def _require_reviewer(reviewer: str | None) -> str:
    if not reviewer or not reviewer.strip():
        raise ReviewError("sign in first: every review records who made it")
    return reviewer.strip()


def _latest_suggestion(session: Session, product_id: int) -> Suggestion:
    suggestion = session.scalar(
        select(Suggestion)
        .join(Product, Product.suggestion_id == Suggestion.id)
        .where(Product.id == product_id)
    )
    if suggestion is None:
        raise ReviewError(f"product {product_id} has no suggestion to review")
    return suggestion


def _claim(
    session: Session, product_id: int, status: ProductStatus, category_id: int | None
) -> None:
    """Change the product only if it is still waiting: the database arbitrates between
    concurrent reviewers."""
    values = {
        "status": status,
        "category_id": category_id,
        "label_source": LabelSource.REVIEW,
        "error": None,
    }
    # An UPDATE gives a CursorResult, which counts the rows it changed.
    result = cast(
        "CursorResult[Any]",
        session.execute(
            update(Product)
            .where(Product.id == product_id, Product.status == ProductStatus.SUGGESTED)
            .values(**values, status_changed_at=func.now())
            .execution_options(synchronize_session="fetch")
        ),
    )
    if result.rowcount != 1:
        current = session.get(Product, product_id)
        if current is None:
            raise ReviewError(f"product {product_id} does not exist")
        raise ReviewConflict(
            f"product {product_id} is no longer waiting for review (it is "
            f"{current.status.value}); reload the queue"
        )


def _category(session: Session, path: str) -> Category:
    category = session.scalar(select(Category).where(Category.path == path))
    if category is None:
        raise ReviewError(
            f"category {path!r} is not in the catalog; pick one from the tree or create it"
        )
    return category


def _record(
    session: Session,
    product_id: int,
    suggestion: Suggestion | None,
    reviewer: str,
    action: ReviewAction,
    category: Category | None,
    note: str | None,
    dispatcher: Dispatcher | None = None,
) -> Review:
    review = Review(
        product_id=product_id,
        suggestion=suggestion,
        reviewer=reviewer,
        action=action,
        category=category,
        note=note,
    )
    session.add(review)
    session.flush()
    if category is not None:
        # The correction teaches the active model from the next photo on (a new revision of
        # its prototype memory, in this same transaction: a rolled-back verdict teaches nothing).
        record_review_revision(session, review)
        emit_reviewed(session, review, dispatcher=dispatcher)
    return review


def accept(
    session: Session,
    product_id: int,
    *,
    reviewer: str,
    depth: int | None = None,
    note: str | None = None,
    dispatcher: Dispatcher | None = None,
) -> Review:
    """Accept the suggested path, or only its first ``depth`` levels (``accept_partial``)."""
    reviewer = _require_reviewer(reviewer)
    suggestion = _latest_suggestion(session, product_id)
    if not suggestion.path:
        raise ReviewError(
            "the model abstained on this product: pick a category instead of accepting"
        )
    parts = parse_path(suggestion.path)
    if depth is not None and not 1 <= depth <= len(parts):
        raise ReviewError(f"depth must be between 1 and {len(parts)} for {suggestion.path!r}")
    partial = depth is not None and depth < len(parts)
    category = _category(session, SEPARATOR.join(parts[: depth or len(parts)]))
    _claim(session, product_id, ProductStatus.ACCEPTED, category.id)
    action = ReviewAction.ACCEPT_PARTIAL if partial else ReviewAction.ACCEPT
    return _record(session, product_id, suggestion, reviewer, action, category, note, dispatcher)


def correct(
    session: Session,
    product_id: int,
    *,
    reviewer: str,
    category_path: str,
    note: str | None = None,
    dispatcher: Dispatcher | None = None,
) -> Review:
    """Put the product in another existing category."""
    reviewer = _require_reviewer(reviewer)
    suggestion = _latest_suggestion(session, product_id)
    category = _category(session, category_path)
    _claim(session, product_id, ProductStatus.ACCEPTED, category.id)
    return _record(
        session, product_id, suggestion, reviewer, ReviewAction.CORRECT, category, note, dispatcher
    )


def assign_new_category(
    session: Session,
    product_id: int,
    *,
    reviewer: str,
    new_path: str,
    note: str | None = None,
    dispatcher: Dispatcher | None = None,
) -> Review:
    """ "Needs a new category": create it (missing ancestors too) and make the photo its first
    example."""
    reviewer = _require_reviewer(reviewer)
    try:
        parts = parse_path(new_path)
    except TaxonomyError as exc:
        raise ReviewError(f"{new_path!r} is not a category path: {exc.reason}") from exc
    text = SEPARATOR.join(parts)
    if session.scalar(select(Category.id).where(Category.path == text)) is not None:
        raise ReviewError(f"{text!r} already exists: use 'another category' to pick it")
    suggestion = _latest_suggestion(session, product_id)
    sync_taxonomy(
        session,
        Taxonomy.from_paths([text]),
        source=f"review:{reviewer}",
        note=f"product {product_id}",
    )
    category = _category(session, text)
    _claim(session, product_id, ProductStatus.ACCEPTED, category.id)
    return _record(
        session,
        product_id,
        suggestion,
        reviewer,
        ReviewAction.NEW_CATEGORY,
        category,
        note,
        dispatcher,
    )


def reject(session: Session, product_id: int, *, reviewer: str, note: str | None = None) -> Review:
    """The product belongs nowhere in the tree."""
    reviewer = _require_reviewer(reviewer)
    suggestion = _latest_suggestion(session, product_id)
    _claim(session, product_id, ProductStatus.REJECTED, None)
    return _record(session, product_id, suggestion, reviewer, ReviewAction.REJECT, None, note)


#: The most one bulk accept takes (the most confident first); the preview counts as far.
BULK_LIMIT = 1_000


def bulk_preview(
    session: Session, *, min_confidence: float, flt: QueueFilter = WHOLE_QUEUE
) -> tuple[int, float]:
    """What :func:`bulk_accept` would take: how many waiting items reach ``min_confidence``
    (counted up to ``BULK_LIMIT + 1``: more means a click takes the ``BULK_LIMIT`` most
    confident), and how many of those it takes are expected to be wrong (the sum of
    ``1 - confidence``: confidences are calibrated probabilities)."""
    keys = queue_keys(
        session, flt, BULK_LIMIT + 1, most_confident_first=True, min_confidence=min_confidence
    )
    confidences = [float(c or 0.0) for c, _ in session.execute(keys)]
    return len(confidences), sum(1.0 - c for c in confidences[:BULK_LIMIT])


def bulk_accept(
    session: Session,
    *,
    reviewer: str,
    min_confidence: float,
    flt: QueueFilter = WHOLE_QUEUE,
    limit: int = BULK_LIMIT,
    dispatcher: Dispatcher | None = None,
) -> int:
    """Accept the waiting suggestions at or above ``min_confidence``, the most confident
    ``limit`` first; returns how many."""
    reviewer = _require_reviewer(reviewer)
    keys = queue_keys(session, flt, limit, most_confident_first=True, min_confidence=min_confidence)
    done = 0
    for _, product_id in session.execute(keys).all():
        try:
            with session.begin_nested():
                accept(
                    session,
                    product_id,
                    reviewer=reviewer,
                    note=f"bulk accept at >= {min_confidence:.2f}",
                    dispatcher=dispatcher,
                )
            done += 1
        except ReviewConflict:
            continue  # someone reviewed it meanwhile
    return done


def reviewed_examples(session: Session) -> tuple[list, list[str]]:
    """Photos (media files) and category paths of products a reviewer accepted or corrected:
    labelled photos of real uploads, the best data to calibrate confidence on."""
    media = MediaStore(get_settings().media_dir)
    first_image = first_photo_ids()
    rows = session.execute(
        select(ProductImage.stored_path, Category.path)
        .join(first_image, first_image.c.image_id == ProductImage.id)
        .join(Product, Product.id == ProductImage.product_id)
        .join(Category, Category.id == Product.category_id)
        .where(Product.status == ProductStatus.ACCEPTED, Product.label_source == LabelSource.REVIEW)
        .order_by(Product.id)
    ).all()
    return [media.path(stored) for stored, _ in rows], [path for _, path in rows]
