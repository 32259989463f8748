"""How the classification pipeline is doing, from the database (the truth)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog_ai.db import Product, ProductStatus, utc_now
from catalog_ai.services.models import active_model

__all__ = ["pipeline_status"]


def pipeline_status(session: Session, *, recent_failures: int = 5) -> dict:
    """Products per status, the oldest waiting product's wait, the active model, recent failures.

    ``oldest_pending_s``: seconds since the longest-waiting ``pending`` product got that status
    (a sweep that enqueues it again restarts its clock).
    """
    by_status = dict(
        session.execute(select(Product.status, func.count()).group_by(Product.status)).all()
    )
    oldest = session.scalar(
        select(func.min(Product.status_changed_at)).where(Product.status == ProductStatus.PENDING)
    )
    model = active_model(session)
    failures = session.execute(
        select(Product.id, Product.title, Product.error)
        .where(Product.status == ProductStatus.FAILED)
        .order_by(Product.status_changed_at.desc(), Product.id.desc())
        .limit(recent_failures)
    ).all()
    if oldest is not None and oldest.tzinfo is None:  # func.min skips the column type on SQLite
        from datetime import UTC, datetime

        oldest = oldest.replace(tzinfo=UTC) if isinstance(oldest, datetime) else None
    return {
        "by_status": {s.value: int(by_status.get(s, 0)) for s in ProductStatus},
        "products": int(sum(by_status.values())),
        "oldest_pending_s": None if oldest is None else round((utc_now() - oldest).total_seconds(), 1),
        "active_model": None if model is None else model.version,
        "recent_failures": [
            {"product_id": pid, "title": title, "error": error} for pid, title, error in failures
        ],
    }
