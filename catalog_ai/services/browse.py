"""Browsing the catalog by branch (a category and everything below it): per-branch figures of
the category tree, and the accepted products of a branch. Read-only.

Definitions used per branch (a category and everything below it):

- ``products``: products whose final category lies in the branch (status ``accepted``);
- ``labelled_by_people``: of those, the ones whose category a person gave (import, review,
  few-shot example: :attr:`LabelSource.is_human`), the rest were auto-accepted from a model;
- ``classified``: products whose newest suggestion points into the branch;
- ``decided``: of those, products that got a final verdict (``accepted``, automatically or by a
  reviewer, or ``rejected``);
- ``acceptance rate`` = ``accepted_as_suggested / decided``: accepted as suggested means accepted
  automatically, or a reviewer accepted the suggestion (fully, or down to a shallower depth);
  corrected, new-category and rejected verdicts count against it;
- ``accuracy`` = ``reviewed_correct / reviewed``: of the reviewer verdicts on suggestions in the
  branch, the share that accepted the suggested path as it was (a partial acceptance means the
  suggestion went too deep, so it is not counted as correct).

A suggestion counts for its own category and every ancestor. Every function takes a session and
never commits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from catalog_ai.db import (
    Category,
    LabelSource,
    Product,
    ProductStatus,
    Review,
    ReviewAction,
    Suggestion,
)
from catalog_ai.db.queries import first_photo_paths, in_branch, newest_suggestion_outcomes
from catalog_ai.taxonomy import SEPARATOR

__all__ = [
    "BranchStats",
    "ProductTile",
    "branch_stats",
    "category_paths",
    "count_products_in_branch",
    "products_in_branch",
]

_ACCEPTED_VERDICTS = (ReviewAction.ACCEPT, ReviewAction.ACCEPT_PARTIAL)


@dataclass(frozen=True)
class BranchStats:
    path: str
    name: str
    depth: int
    products: int = 0
    labelled_by_people: int = 0
    classified: int = 0
    decided: int = 0
    accepted_as_suggested: int = 0
    reviewed: int = 0
    reviewed_correct: int = 0

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted_as_suggested / self.decided if self.decided else None

    @property
    def accuracy(self) -> float | None:
        return self.reviewed_correct / self.reviewed if self.reviewed else None


@dataclass(frozen=True)
class ProductTile:
    product_id: int
    title: str
    status: str
    category_path: str | None
    label_source: LabelSource | None
    image_path: str | None  # relative to the media store


def category_paths(session: Session) -> list[str]:
    """Every category path, in tree order (a parent right before its children)."""
    paths = session.scalars(select(Category.path)).all()
    return sorted(paths, key=lambda p: tuple(p.split(SEPARATOR)))


def _prefixes(path: str) -> Iterable[str]:
    parts = path.split(SEPARATOR)
    for depth in range(1, len(parts) + 1):
        yield SEPARATOR.join(parts[:depth])


def branch_stats(session: Session) -> list[BranchStats]:
    """Figures per branch for every category, in tree order (see the module docstring)."""
    cats = session.execute(select(Category.path, Category.name, Category.depth)).all()
    figures: dict[str, dict[str, int]] = {path: defaultdict(int) for path, _, _ in cats}

    def add(path: str | None, key: str, n: int) -> None:
        if not path:
            return
        for prefix in _prefixes(path):
            if prefix in figures:
                figures[prefix][key] += n

    for path, label_source, n in session.execute(
        select(Category.path, Product.label_source, func.count(Product.id))
        .join(Product, Product.category_id == Category.id)
        .where(Product.status == ProductStatus.ACCEPTED)
        .group_by(Category.path, Product.label_source)
    ):
        add(path, "products", n)
        if label_source is not None and label_source.is_human:
            add(path, "labelled_by_people", n)

    rows = session.execute(
        newest_suggestion_outcomes(Suggestion.path).where(Suggestion.path != "")
    ).all()
    for path, status, label_source, action, n in rows:
        add(path, "classified", n)
        if status in (ProductStatus.ACCEPTED, ProductStatus.REJECTED):
            add(path, "decided", n)
            if (status == ProductStatus.ACCEPTED and label_source == LabelSource.MODEL) or (
                action in _ACCEPTED_VERDICTS
            ):
                add(path, "accepted_as_suggested", n)

    for path, action, n in session.execute(
        select(Suggestion.path, Review.action, func.count())
        .join(Suggestion, Suggestion.id == Review.suggestion_id)
        .where(Suggestion.path != "")
        .group_by(Suggestion.path, Review.action)
    ):
        add(path, "reviewed", n)
        if action == ReviewAction.ACCEPT:
            add(path, "reviewed_correct", n)

    out = [BranchStats(path=p, name=name, depth=depth, **figures[p]) for p, name, depth in cats]
    return sorted(out, key=lambda b: tuple(b.path.split(SEPARATOR)))


def _branch_query(path: str | None, include_subcategories: bool) -> Select[int]:
    q = (
        select(Product.id)
        .join(Category, Category.id == Product.category_id)
        .where(Product.status == ProductStatus.ACCEPTED)
    )
    if path:
        q = q.where(
            in_branch(
                Category.path,
                path,
                separator=SEPARATOR,
                include_subcategories=include_subcategories,
            )
        )
    return q


def count_products_in_branch(
    session: Session, path: str | None, *, include_subcategories: bool = True
) -> int:
    sub = _branch_query(path, include_subcategories).subquery()
    return session.scalar(select(func.count()).select_from(sub)) or 0


def products_in_branch(
    session: Session,
    path: str | None,
    *,
    include_subcategories: bool = True,
    limit: int = 48,
    offset: int = 0,
) -> list[ProductTile]:
    """Accepted products of the category ``path`` (and below it), newest first."""
    ids = session.scalars(
        _branch_query(path, include_subcategories)
        .order_by(Product.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return _tiles(session, list(ids))


def _tiles(session: Session, ids: list[int]) -> list[ProductTile]:
    if not ids:
        return []
    rows = {
        pid: (title, status, path, label_source)
        for pid, title, status, path, label_source in session.execute(
            select(Product.id, Product.title, Product.status, Category.path, Product.label_source)
            .outerjoin(Category, Category.id == Product.category_id)
            .where(Product.id.in_(ids))
        )
    }
    images = first_photo_paths(session, ids)
    return [
        ProductTile(
            product_id=pid,
            title=rows[pid][0],
            status=str(rows[pid][1]),
            category_path=rows[pid][2],
            label_source=rows[pid][3],
            image_path=images.get(pid),
        )
        for pid in ids
        if pid in rows
    ]
