"""The review queue and verdicts over HTTP (the queue is a read, scope ``read``;
a verdict needs ``review``), through
:mod:`catalog_ai.services.review`, the same service the dashboard's review page uses.

``GET /v1/review-queue``: products waiting for a person, least confident first, with the
dashboard's filters (branch, model version, source). The queue is a work list that shrinks as
people review it, so it is read from the top again (``limit``, and ``offset`` to look further
down), not paged by a cursor. ``POST /v1/products/{id}/review``: accept (to a depth), move to
another category, a new category, or reject; the reviewer recorded is the API key's owner. A
product someone else decided meanwhile is a ``409``: reload the queue.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy.orm import Session

from catalog_ai.api.deps import DispatcherDep, ReadKey, ReviewKey, SessionDep
from catalog_ai.api.problems import Problem, from_error, keyed_responses, register_error
from catalog_ai.api.schemas.products import photo_url, product_url
from catalog_ai.api.schemas.review import (
    AuditIn,
    AuditOut,
    QueueItemOut,
    QueueOut,
    ReviewIn,
    ReviewOut,
)
from catalog_ai.db import Review
from catalog_ai.dispatch import Dispatcher
from catalog_ai.services.audits import (
    AuditConflict,
    AuditError,
    open_audit_count,
    open_audits,
    resolve_audit,
)
from catalog_ai.services.product_photos import first_image_ids
from catalog_ai.services.products_query import require_product
from catalog_ai.services.review import (
    QueueFilter,
    ReviewConflict,
    ReviewError,
    accept,
    assign_new_category,
    correct,
    queue_count,
    reject,
    review_queue,
)

__all__ = ["router"]

router = APIRouter(tags=["review"])

_SOURCES = ("head", "prototype", "abstain", "open_set", "audit")

register_error(AuditConflict, 409, "review-conflict")
register_error(AuditError, 422, "audit-refused")


@router.get(
    "/v1/review-queue",
    response_model=QueueOut,
    summary="Products waiting for review, least confident first",
    responses=keyed_responses(422),
)
def queue(
    session: SessionDep,
    key: ReadKey,
    branch: Annotated[
        str | None, Query(max_length=4096, description="only suggestions in this branch")
    ] = None,
    model_version: Annotated[str | None, Query(max_length=255)] = None,
    source: Annotated[
        str | None,
        Query(
            max_length=32,
            description="head | prototype | abstain | open_set | audit (open audits: "
            "auto-accepted products drawn for a person to check, oldest first; the other "
            "filters do not apply to them)",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> QueueOut:
    if source is not None and source not in _SOURCES:
        raise Problem(
            422,
            "invalid-query",
            f"source {source!r} is not one of {', '.join(_SOURCES)}; pick one",
            field="source",
        )
    if source == "audit":
        return _audit_queue(session, limit=limit, offset=offset)
    flt = QueueFilter(
        branch=branch.strip() if branch else None, model_version=model_version, source=source
    )
    items = review_queue(session, flt=flt, limit=limit, offset=offset)
    photos = first_image_ids(session, [item.product_id for item in items])
    return QueueOut(
        total=queue_count(session, flt=flt),
        items=[
            QueueItemOut(
                product_id=item.product_id,
                url=product_url(item.product_id),
                title=item.title,
                photo_url=(
                    photo_url(item.product_id, photos[item.product_id])
                    if item.product_id in photos
                    else None
                ),
                suggestion_id=item.suggestion_id,
                model_version=item.model_version,
                path=item.path,
                confidence=item.confidence,
                levels=item.levels,
                source=item.source,
                open_set=item.open_set,
            )
            for item in items
        ],
    )


def _audit_queue(session: Session, *, limit: int, offset: int) -> QueueOut:
    audits = open_audits(session, limit=limit, offset=offset)
    photos = first_image_ids(session, [a.product_id for a in audits])
    return QueueOut(
        total=open_audit_count(session),
        items=[
            QueueItemOut(
                product_id=a.product_id,
                url=product_url(a.product_id),
                title=a.title,
                photo_url=(
                    photo_url(a.product_id, photos[a.product_id])
                    if a.product_id in photos
                    else None
                ),
                suggestion_id=a.suggestion_id or 0,
                model_version=a.model_version,
                path=a.path,
                confidence=a.confidence,
                levels=a.levels,
                source=a.source,
                open_set=a.open_set,
                is_audit=True,
            )
            for a in audits
        ],
    )


@router.post(
    "/v1/products/{product_id}/audit",
    response_model=AuditOut,
    summary="Answer an audit: the auto-accepted category is right, or the right one",
    responses=keyed_responses(404, 409, 422),
)
def audit(
    product_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    verdict: AuditIn,
    session: SessionDep,
    key: ReviewKey,
    dispatcher: DispatcherDep,
) -> AuditOut:
    require_product(session, product_id)
    try:
        done = resolve_audit(
            session,
            product_id,
            reviewer=key.owner,
            category_path=verdict.category_path,
            note=verdict.note,
            dispatcher=dispatcher,
        )
    except AuditConflict:
        raise
    except AuditError as exc:
        raise from_error(exc, field="category_path" if verdict.category_path else None) from None
    assert done.resolved_at is not None and done.verdict is not None  # resolved just now
    return AuditOut(
        audit_id=done.id,
        product_id=product_id,
        url=product_url(product_id),
        verdict=done.verdict.value,
        category_path=done.true_path or "",
        reviewer=done.reviewer or key.owner,
        resolved_at=done.resolved_at,
    )


@router.post(
    "/v1/products/{product_id}/review",
    response_model=ReviewOut,
    summary="Accept (to a depth), move, put in a new category, or reject a product",
    responses=keyed_responses(404, 409, 422),
)
def review(
    product_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    verdict: ReviewIn,
    session: SessionDep,
    key: ReviewKey,
    dispatcher: DispatcherDep,
) -> ReviewOut:
    require_product(session, product_id)
    try:
        done = _verdict(session, product_id, verdict, key.owner, dispatcher)
    except ReviewConflict:
        raise
    except ReviewError as exc:
        field, fix = _AT_FAULT[verdict.action]
        problem = from_error(
            exc, field=field if verdict.action != "accept" or verdict.depth else None
        )
        problem.fix = problem.fix or fix
        raise problem from None
    return _review_out(done)


# Where a refused verdict is at fault, and the fix when the service's message names none.
_AT_FAULT = {
    "accept": ("depth", "accept it whole, or move it to a category: action move"),
    "move": ("category_path", "pick a category of GET /v1/categories, or use new_category"),
    "new_category": ("category_path", "use action move to put it in the existing category"),
    "reject": (None, "GET the product to see where it stands"),
}


def _verdict(
    session: Session, product_id: int, verdict: ReviewIn, reviewer: str, dispatcher: Dispatcher
) -> Review:
    """The verdict through the review service; ``dispatcher`` sends ``product.accepted`` to the
    webhooks once the transaction commits."""
    note = verdict.note
    if verdict.action == "accept":
        return accept(
            session,
            product_id,
            reviewer=reviewer,
            depth=verdict.depth,
            note=note,
            dispatcher=dispatcher,
        )
    elif verdict.depth is not None:
        raise Problem(
            422,
            "invalid-review",
            f"depth goes with accept, not {verdict.action}; leave it out",
            field="depth",
        )
    elif verdict.action == "reject":
        return reject(session, product_id, reviewer=reviewer, note=note)
    elif verdict.category_path is None:
        raise Problem(
            422,
            "invalid-review",
            f"{verdict.action} needs category_path; send the category, e.g. 'Fruit > Apple'",
            field="category_path",
        )
    elif verdict.action == "move":
        return correct(
            session,
            product_id,
            reviewer=reviewer,
            category_path=verdict.category_path.strip(),
            note=note,
            dispatcher=dispatcher,
        )
    else:
        return assign_new_category(
            session,
            product_id,
            reviewer=reviewer,
            new_path=verdict.category_path,
            note=note,
            dispatcher=dispatcher,
        )


def _review_out(done: Review) -> ReviewOut:
    category = done.category
    return ReviewOut(
        review_id=done.id,
        product_id=done.product_id,
        url=product_url(done.product_id),
        action=done.action.value,
        category_path=category.path if category is not None else None,
        reviewer=done.reviewer,
        status="rejected" if category is None else "accepted",
        created_at=done.created_at,
    )
