"""Text search, and what every search returns: :class:`Hit`.

Portable SQL (``ILIKE`` on PostgreSQL, ``lower() LIKE`` on SQLite): every word of the query must
occur, as a substring, in the product's title or the path of its accepted category. Substrings
suit short product titles ("juice" finds "Orange-Juice") and need no extra tables or triggers on
either database. On PostgreSQL a trigram index on titles (migration ``0008_scale``) finds rare
words without a scan. A common word can match a tenth of a large catalogue: so the ranking is
done over the :data:`CANDIDATES` newest matching products (found by walking the newest products
first, or through the index, whichever PostgreSQL judges cheaper), not over every match: 0.5-2 s
at 1M products became tens of ms (docs/BENCHMARKS.md, issue 16). SQLite folds case for ASCII
letters only. Results are per product.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog_ai.db import Category, Product, ProductImage
from catalog_ai.db.queries import first_photo_paths
from catalog_ai.index import SearchError
from catalog_ai.photos.store import MediaStore
from catalog_ai.settings import get_settings

__all__ = ["Hit", "media_path", "text_image_ids", "text_search"]


@dataclass(frozen=True)
class Hit:
    """One product found, with the photo that matched (visual search) or its first photo."""

    product_id: int
    score: float
    title: str
    category_path: str | None
    image_path: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: How many of the newest matching products a search ranks.
CANDIDATES = 2_000


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())


def _like(word: str) -> str:
    return "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _text_condition(session: Session, words: list[str]) -> sa.ColumnElement[bool]:
    # The categories whose path holds a word are found first, in their own small table, and
    # products are then matched by title OR by those category ids: both halves of the OR are
    # indexable on the products table (the pg_trgm GIN index on title on PostgreSQL, migration
    # 0008_scale, and the category_id index), so PostgreSQL combines two bitmap index scans
    # instead of reading every product; a sub-select in the OR would be a filter on each row.
    conditions = []
    for w in words:
        category_ids = session.scalars(
            select(Category.id).where(Category.path.ilike(_like(w), escape="\\"))
        ).all()
        title = Product.title.ilike(_like(w), escape="\\")
        conditions.append(
            sa.or_(title, Product.category_id.in_(category_ids)) if category_ids else title
        )
    return sa.and_(*conditions)


def text_search(session: Session, text: str, *, limit: int = 20) -> list[Hit]:
    """Products whose title or category path contains every word of ``text`` (any case).

    Score: the share of the words found in the title itself (the rest matched the category);
    ties newest first; ranked over the :data:`CANDIDATES` newest matches (module docstring).
    """
    words = _words(text)
    if not words:
        raise SearchError(f"the search text {text!r} holds no words; give at least one word")
    if limit < 1:
        raise SearchError(f"limit={limit} must be at least 1")
    in_title = sum(
        (sa.case((Product.title.ilike(_like(w), escape="\\"), 1), else_=0) for w in words),
        sa.literal(0),
    )
    newest = (
        select(Product.id)
        .where(_text_condition(session, words))
        .order_by(Product.id.desc())
        .limit(max(CANDIDATES, limit))
        .subquery()
    )
    rows = session.execute(
        select(Product.id, Product.title, Category.path, in_title.label("in_title"))
        .join(newest, newest.c.id == Product.id)
        .outerjoin(Category, Product.category_id == Category.id)
        .order_by(sa.desc("in_title"), Product.id.desc())
        .limit(limit)
    ).all()
    first_images = first_photo_paths(session, [r[0] for r in rows])
    return [
        Hit(
            product_id=pid,
            score=float(n) / len(words),
            title=title,
            category_path=path,
            image_path=media_path(first_images.get(pid)),
        )
        for pid, title, path, n in rows
    ]


def text_image_ids(session: Session, text: str) -> np.ndarray:
    """Ids of the photos of every product :func:`text_search` would find for ``text``."""
    words = _words(text)
    if not words:
        raise SearchError(f"the search text {text!r} holds no words; give at least one word")
    ids = session.scalars(
        select(ProductImage.id)
        .join(Product, ProductImage.product_id == Product.id)
        .outerjoin(Category, Product.category_id == Category.id)
        .where(_text_condition(session, words))
    ).all()
    return np.asarray(ids, dtype=np.int64)


def media_path(stored_path: str | None) -> str | None:
    """The file of a photo stored at ``stored_path`` in the media store (what a hit shows)."""
    if stored_path is None:
        return None
    return str(MediaStore(get_settings().media_dir).root / stored_path)
