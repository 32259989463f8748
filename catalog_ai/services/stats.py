"""Counts for ``catalog-ai status`` / ``catalog stats`` and the dashboard's health page."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog_ai.db import Category, Product, ProductImage, ProductStatus

__all__ = ["catalog_counts"]


def catalog_counts(session: Session) -> dict:
    by_status = dict(
        session.execute(select(Product.status, func.count()).group_by(Product.status)).all()
    )
    return {
        "categories": session.scalar(select(func.count()).select_from(Category)) or 0,
        "leaf_categories_with_products": session.scalar(
            select(func.count(func.distinct(Product.category_id))).where(
                Product.category_id.is_not(None)
            )
        )
        or 0,
        "products": sum(by_status.values()),
        "images": session.scalar(select(func.count()).select_from(ProductImage)) or 0,
        "by_status": {status.value: int(by_status.get(status, 0)) for status in ProductStatus},
    }
