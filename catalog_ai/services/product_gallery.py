"""Every photo of a product, in the order the shop shows them: what a card displays.

The model decides on all of a product's photos (:mod:`catalog_ai.services.classify`), so the
person reviewing it sees all of them too, in the same order (position, then id).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog_ai.db import ProductImage
from catalog_ai.db.queries import in_chunks

__all__ = ["photo_paths"]


def photo_paths(session: Session, product_ids: Sequence[int]) -> dict[int, list[str]]:
    """Each product's stored photo paths (relative to the media store), ordered by position,
    then id; products without a photo are left out."""
    out: dict[int, list[str]] = {}
    for chunk in in_chunks(sorted(set(product_ids))):
        rows = session.execute(
            select(ProductImage.product_id, ProductImage.stored_path)
            .where(ProductImage.product_id.in_(chunk))
            .order_by(ProductImage.product_id, ProductImage.position, ProductImage.id)
        ).all()
        for product_id, stored_path in rows:
            out.setdefault(product_id, []).append(stored_path)
    return out
