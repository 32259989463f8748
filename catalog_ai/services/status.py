"""How the classification pipeline is doing, from the database (the truth)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog_ai.db import Product, ProductStatus, utc_now
from catalog_ai.services.models import active_model

__all__ = ["failures", "pipeline_status", "status_counts"]


def pipeline_status(session: Session, *, recent_failures: int = 5) -> dict:
    """Products per status, the oldest waiting product's wait, the active model, recent failures.

    ``oldest_pending_s``: seconds since the longest-waiting ``pending`` product got that status
    (a sweep that enqueues it again restarts its clock).
    """
    by_status = status_counts(session)
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
    return {
        "by_status": by_status,
        "products": sum(by_status.values()),
        "oldest_pending_s": None
        if oldest is None
        else round((utc_now() - oldest).total_seconds(), 1),
        "active_model": None if model is None else model.version,
        "recent_failures": [
            {"product_id": pid, "title": title, "error": error} for pid, title, error in failures
        ],
    }


def status_counts(session: Session, product_ids: Iterable[int] | None = None) -> dict[str, int]:
    """Products per status (every status listed, zeros included), of ``product_ids`` or all.

    For summaries such as "accepted automatically / waiting for review / failed" of one upload.
    """
    query = select(Product.status, func.count()).group_by(Product.status)
    if product_ids is not None:
        ids = list(product_ids)
        counts: dict[ProductStatus, int] = {}
        for start in range(0, len(ids), 10_000):  # SQLite caps the parameters of one statement
            part = ids[start : start + 10_000]
            for status, n in session.execute(query.where(Product.id.in_(part))).all():
                counts[status] = counts.get(status, 0) + n
    else:
        counts = dict(session.execute(query).all())
    return {s.value: int(counts.get(s, 0)) for s in ProductStatus}


def failures(session: Session, product_ids: Iterable[int]) -> dict[int, str]:
    """Of ``product_ids``, the failed products and why (for a command that waited for them)."""
    ids = list(product_ids)
    out: dict[int, str] = {}
    for start in range(0, len(ids), 10_000):  # SQLite caps the parameters of one statement
        part = ids[start : start + 10_000]
        rows = session.execute(
            select(Product.id, Product.error).where(
                Product.id.in_(part), Product.status == ProductStatus.FAILED
            )
        ).all()
        out.update({pid: error or "failed" for pid, error in rows})
    return out
