"""Putting products back in the queue: for a newly active model, after a lost message or a dead
worker (the sweep), and failed products a person retries.

The database is the truth and the queue a hint: each function sets the products' status in the
caller's transaction and hands their ids to the dispatcher only after it commits.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from catalog_ai.db import Product, ProductStatus, utc_now
from catalog_ai.dispatch import Dispatcher, after_commit
from catalog_ai.services.classifiable import MODEL_LABELLED, WAITING, classifiable
from catalog_ai.services.models import active_model

__all__ = ["RetrySummary", "mark_for_reclassification", "requeue_failed", "requeue_stale"]

log = logging.getLogger(__name__)


@dataclass
class RetrySummary:
    requeued: list[int] = field(default_factory=list)
    not_found: list[int] = field(default_factory=list)
    not_failed: list[tuple[int, str]] = field(default_factory=list)  # (product id, its status)
    no_photo: list[int] = field(default_factory=list)  # failed at ingest: nothing to classify


def mark_for_reclassification(session: Session, *, model_version_id: int) -> list[int]:
    """Products this version should classify, in id order; those labelled by an earlier model
    go back to ``pending`` (so a lost message is found by the sweep like any other)."""
    now = utc_now()
    session.execute(
        update(Product)
        .where(Product.status.in_(MODEL_LABELLED), classifiable(model_version_id))
        # attempts=0: their last classification finished; a new round counts afresh.
        .values(status=ProductStatus.PENDING, status_changed_at=now, attempts=0)
        .execution_options(synchronize_session=False)
    )
    return list(
        session.scalars(
            select(Product.id).where(classifiable(model_version_id)).order_by(Product.id)
        )
    )


def requeue_stale(
    session: Session,
    *,
    older_than_s: float,
    dispatcher: Dispatcher | None,
    limit: int = 10_000,
) -> list[int]:
    """Products ``pending`` or ``processing`` for longer than ``older_than_s`` seconds go back to
    ``pending`` with a fresh timestamp, and are handed to ``dispatcher`` after the commit
    (``None``: only reset, nothing enqueued).

    The fresh timestamp keeps one product from being enqueued again at every sweep while a long
    queue drains. With no active model nothing is enqueued (the tasks would only wait too). At
    most ``limit`` products per call, oldest ids first; the next sweep takes the rest.
    """
    now = utc_now()
    cutoff = now - timedelta(seconds=older_than_s)
    if active_model(session) is None:
        return []
    # Rows another transaction holds (a worker recording them right now) are skipped: they are
    # not stale, and waiting for them could deadlock with that worker's id-ordered locks.
    ids = list(
        session.scalars(
            select(Product.id)
            .where(Product.status.in_(WAITING), Product.status_changed_at < cutoff)
            .order_by(Product.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if ids:
        session.execute(
            update(Product)
            .where(Product.id.in_(ids))
            .values(status=ProductStatus.PENDING, status_changed_at=now)
            .execution_options(synchronize_session=False)
        )
        log.info(
            "sweep: %d products waited longer than %s s; enqueued again", len(ids), older_than_s
        )
        if dispatcher is not None:
            after_commit(session, dispatcher).classify(ids)
    return ids


def requeue_failed(
    session: Session, product_ids: Sequence[int] | None = None, *, dispatcher: Dispatcher | None
) -> RetrySummary:
    """Put failed products back to ``pending`` (attempts reset) and hand them to ``dispatcher``
    after the commit (``None``: leave them pending for a sweep).

    ``product_ids=None`` retries every failed product. Products that failed at ingest have no
    photo to classify and stay failed (listed in ``no_photo``).
    """
    summary = RetrySummary()
    query = select(Product).options(selectinload(Product.images)).order_by(Product.id)
    if product_ids is None:
        query = query.where(Product.status == ProductStatus.FAILED)
    else:
        query = query.where(Product.id.in_(set(product_ids)))
    found = {p.id: p for p in session.scalars(query.with_for_update(of=Product))}
    if product_ids is not None:
        summary.not_found = sorted(set(product_ids) - found.keys())
    for product in found.values():
        if product.status != ProductStatus.FAILED:
            summary.not_failed.append((product.id, product.status.value))
        elif not product.images:
            summary.no_photo.append(product.id)
        else:
            product.status = ProductStatus.PENDING
            product.error = None
            product.attempts = 0
            summary.requeued.append(product.id)
    session.flush()
    if dispatcher is not None and summary.requeued:
        after_commit(session, dispatcher).classify(summary.requeued)
    return summary
