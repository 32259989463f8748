"""How the catalog and its classification pipeline are doing, from the database (the truth):
products per status, the oldest waiting product, recent failures, catalog sizes.

For ``catalog-ai status``, ``catalog-ai catalog stats``, the summary of one upload and the
dashboard's health page. Products per status: :func:`status_counts`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog_ai.db import Category, Product, ProductStatus, utc_now
from catalog_ai.db.queries import in_chunks
from catalog_ai.services.branch_figures import catalog_figures
from catalog_ai.services.history import ProductState, product_states
from catalog_ai.services.models import active_model
from catalog_ai.services.status_counts import total_status_counts

__all__ = [
    "catalog_counts",
    "failures",
    "oldest_pending",
    "pipeline_status",
    "status_counts",
]


def status_counts(session: Session, product_ids: Iterable[int] | None = None) -> dict[str, int]:
    """Products per status (every status listed, zeros included), of ``product_ids`` or all.

    For summaries such as "accepted automatically / waiting for review / failed" of one upload.
    The whole catalogue's counts are the exact totals the database keeps
    (:mod:`catalog_ai.services.status_counts`), not a count over every product.
    """
    if product_ids is None:
        return total_status_counts(session)
    query = select(Product.status, func.count()).group_by(Product.status)
    counts: dict[ProductStatus, int] = {}
    for part in (query.where(Product.id.in_(chunk)) for chunk in in_chunks(product_ids)):
        for status, n in session.execute(part):
            counts[status] = counts.get(status, 0) + n
    return {s.value: int(counts.get(s, 0)) for s in ProductStatus}


def oldest_pending(session: Session) -> tuple[ProductState, float] | None:
    """The product waiting longest for a worker (``pending``), and for how many seconds since
    it got that status (a sweep that enqueues it again restarts its clock)."""
    pid = session.scalar(
        select(Product.id)
        .where(Product.status == ProductStatus.PENDING)
        .order_by(Product.status_changed_at, Product.id)
        .limit(1)
    )
    if pid is None:
        return None
    state = product_states(session, [pid])[0]
    return state, round((utc_now() - state.status_changed_at).total_seconds(), 1)


def pipeline_status(session: Session, *, recent_failures: int = 5) -> dict[str, Any]:
    """Products per status, the oldest waiting product's wait (``oldest_pending_s``, from
    :func:`oldest_pending`), the active model, recent failures."""
    by_status = status_counts(session)
    oldest = oldest_pending(session)
    model = active_model(session)
    failed = session.execute(
        select(Product.id, Product.title, Product.error)
        .where(Product.status == ProductStatus.FAILED)
        .order_by(Product.status_changed_at.desc(), Product.id.desc())
        .limit(recent_failures)
    ).all()
    return {
        "by_status": by_status,
        "products": sum(by_status.values()),
        "oldest_pending_s": None if oldest is None else oldest[1],
        "active_model": None if model is None else model.version,
        "recent_failures": [
            {"product_id": pid, "title": title, "error": error} for pid, title, error in failed
        ],
    }


def catalog_counts(session: Session) -> dict[str, Any]:
    """Sizes of the catalog: categories, categories holding products, products (per status),
    photos. For a large catalogue the photos and the categories holding products come from the
    tree's refreshed summary (``as_of``: when it was computed; None: counted now), see
    :mod:`catalog_ai.services.branch_figures`."""
    by_status = status_counts(session)
    extra = catalog_figures(session)
    return {
        "categories": session.scalar(select(func.count()).select_from(Category)) or 0,
        "leaf_categories_with_products": extra["leaf_categories_with_products"],
        "products": sum(by_status.values()),
        "images": extra["images"],
        "by_status": by_status,
        "as_of": None if extra["as_of"] is None else extra["as_of"].isoformat(),
    }


def failures(session: Session, product_ids: Iterable[int]) -> dict[int, str]:
    """Of ``product_ids``, the failed products and why (for a command that waited for them)."""
    out: dict[int, str] = {}
    for chunk in in_chunks(product_ids):
        rows = session.execute(
            select(Product.id, Product.error).where(
                Product.id.in_(chunk), Product.status == ProductStatus.FAILED
            )
        )
        out.update({pid: error or "failed" for pid, error in rows})
    return out
