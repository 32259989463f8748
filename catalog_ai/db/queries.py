"""Query rules over the ORM models that more than one use case needs, written once.

Each is a small function returning a SQL expression or running one query; services compose
them. Nothing here commits.

- :func:`in_chunks` and :data:`IN_CHUNK`: how many ids one ``IN (...)`` list may hold;
- :func:`find_model_version` / :func:`model_version_by_name`: a registered version by name;
- :func:`first_photo_ids` / :func:`first_photo_paths`: a product's first photo (its lowest id);
- :func:`newest_suggestion_outcomes`: outcomes over each product's current suggestion;
- :func:`categories_stamp`: what changes when the category tree does;
- :func:`in_branch`: a category path inside a branch, ``%`` and ``_`` taken literally.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased
from sqlalchemy.sql.selectable import Subquery

from catalog_ai.db.models import (
    Category,
    ModelVersion,
    Product,
    ProductImage,
    Review,
    Suggestion,
    TaxonomyVersion,
)
from catalog_ai.errors import CatalogAIError

__all__ = [
    "IN_CHUNK",
    "ModelVersionNotFound",
    "categories_stamp",
    "find_model_version",
    "first_photo_id",
    "first_photo_ids",
    "first_photo_paths",
    "in_branch",
    "in_chunks",
    "model_version_by_name",
    "newest_suggestion_outcomes",
]

T = TypeVar("T")

#: Ids per ``IN (...)`` list. SQLite before 3.32 allows 999 bound parameters per statement (later
#: versions 32,766); 900 leaves room for the statement's other parameters on either.
IN_CHUNK = 900


def in_chunks(ids: Iterable[T], size: int = IN_CHUNK) -> Iterator[list[T]]:
    """``ids`` in lists of at most ``size``, in order: one ``IN (...)`` per list."""
    chunk: list[T] = []
    for item in ids:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --------------------------------------------------------------------------- model versions
class ModelVersionNotFound(CatalogAIError, LookupError):
    """No model version of that name is registered in the catalog."""


def find_model_version(session: Session, name: str) -> ModelVersion | None:
    """The registered model version called ``name``, or None."""
    return session.scalar(select(ModelVersion).where(ModelVersion.version == name))


def model_version_by_name(session: Session, name: str) -> ModelVersion:
    """The registered model version called ``name``; :class:`ModelVersionNotFound` naming it,
    the newest known versions and the fix when there is none."""
    row = find_model_version(session, name)
    if row is not None:
        return row
    known = session.scalars(
        select(ModelVersion.version).order_by(ModelVersion.id.desc()).limit(5)
    ).all()
    raise ModelVersionNotFound(
        f"no registered model version {name!r}"
        + (f" (newest: {', '.join(known)})" if known else " (none is registered)")
        + "; see catalog-ai models list, or register a bundle: catalog-ai models register DIR"
    )


# --------------------------------------------------------------------------- photos
def first_photo_ids() -> Subquery:
    """Per product, the id of its first photo (the lowest id: the order photos were stored in),
    as columns ``product_id`` and ``image_id``."""
    return (
        select(ProductImage.product_id, func.min(ProductImage.id).label("image_id"))
        .group_by(ProductImage.product_id)
        .subquery("first_photo")
    )


def first_photo_id(session: Session, product_id: int) -> int | None:
    """The id of the product's first photo; None without a photo."""
    return session.scalar(
        select(func.min(ProductImage.id)).where(ProductImage.product_id == product_id)
    )


def first_photo_paths(session: Session, product_ids: Iterable[int]) -> dict[int, str]:
    """The stored path (relative to the media store) of each product's first photo; products
    without a photo are left out."""
    first = first_photo_ids()
    out: dict[int, str] = {}
    for chunk in in_chunks(dict.fromkeys(product_ids)):
        out.update(
            session.execute(
                select(first.c.product_id, ProductImage.stored_path)
                .join(ProductImage, ProductImage.id == first.c.image_id)
                .where(first.c.product_id.in_(chunk))
            ).all()
        )
    return out


# --------------------------------------------------------------------------- suggestions
def newest_suggestion_outcomes(key: Any) -> Select[Any, Any, Any, Any, int]:
    """Over each product's current suggestion (``products.suggestion_id``: its newest; a
    re-classification supersedes older ones): ``(key, product status, label source, the action
    of the last verdict on that suggestion or None, count)``, grouped by all four. ``key`` is a
    column of :class:`Suggestion` (``path`` for the catalogue's branch figures, ``source`` for
    the metrics); filter the result with ``.where``. It reads every classified product: the
    catalogue tree reads it from a summary refreshed in the background
    (:mod:`catalog_ai.services.branch_figures`)."""
    # The verdict on the current suggestion, if a reviewer gave one.
    verdict = (
        select(Review.suggestion_id, func.max(Review.id).label("rid"))
        .group_by(Review.suggestion_id)
        .subquery()
    )
    last_review = aliased(Review)
    return (
        select(key, Product.status, Product.label_source, last_review.action, func.count())
        .join(Product, Product.suggestion_id == Suggestion.id)
        .outerjoin(verdict, verdict.c.suggestion_id == Suggestion.id)
        .outerjoin(last_review, last_review.id == verdict.c.rid)
        .group_by(key, Product.status, Product.label_source, last_review.action)
    )


# --------------------------------------------------------------------------- categories
def categories_stamp(session: Session) -> tuple[Any, ...]:
    """What changes whenever the category tree does (a category added, a taxonomy synced):
    the key under which a process may reuse what it read of the tree (10,000 rows)."""
    row = session.execute(
        select(
            func.count(Category.id),
            func.max(Category.id),
            select(func.max(TaxonomyVersion.id)).scalar_subquery(),
        )
    ).one()
    return (str(session.get_bind().engine.url), *row)


# --------------------------------------------------------------------------- branches
def in_branch(
    column: InstrumentedAttribute[str] | ColumnElement[str],
    path: str,
    *,
    separator: str,
    include_subcategories: bool = True,
) -> ColumnElement[bool]:
    """``column`` (a category path) is ``path`` or, with ``include_subcategories``, lies below
    it. ``%`` and ``_`` in ``path`` are plain characters (a category may be called
    ``50%_off``), not ``LIKE`` wildcards."""
    if not include_subcategories:
        return column == path
    return or_(column == path, column.startswith(path + separator, autoescape=True))
