"""Read-only views of the catalog for the dashboard: per-branch figures of the category tree,
products of a branch, a product's history, a model version's progress, upload states.

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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Select, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from catalog_ai.db import (
    Category,
    LabelSource,
    ModelVersion,
    Product,
    ProductImage,
    ProductStatus,
    Review,
    ReviewAction,
    Suggestion,
    utc_now,
)
from catalog_ai.errors import CatalogAIError
from catalog_ai.taxonomy import SEPARATOR

__all__ = [
    "BranchStats",
    "CatalogViewError",
    "ModelProgress",
    "ProductHistory",
    "ProductState",
    "ProductTile",
    "ReviewRecord",
    "SuggestionRecord",
    "branch_stats",
    "category_paths",
    "count_products_in_branch",
    "model_progress",
    "oldest_pending",
    "product_history",
    "product_states",
    "products_in_branch",
]

_IN_CHUNK = 900  # ids per IN (...) list: below SQLite's smallest variable limit
_ACCEPTED_VERDICTS = (ReviewAction.ACCEPT, ReviewAction.ACCEPT_PARTIAL)


class CatalogViewError(CatalogAIError):
    """A view was asked for something the catalog does not have (an unknown product, model)."""


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


@dataclass(frozen=True)
class ProductState:
    product_id: int
    title: str
    status: str
    error: str | None
    category_path: str | None  # the final category
    suggestion_path: str | None  # the newest suggestion ("" when the model abstained)
    confidence: float | None
    status_changed_at: datetime


@dataclass(frozen=True)
class SuggestionRecord:
    suggestion_id: int
    model_version: str
    path: str
    confidence: float
    source: str
    open_set: bool
    levels: list
    created_at: datetime


@dataclass(frozen=True)
class ReviewRecord:
    review_id: int
    reviewer: str
    action: str
    category_path: str | None
    suggestion_id: int | None
    note: str | None
    created_at: datetime


@dataclass(frozen=True)
class ProductHistory:
    product_id: int
    title: str
    external_id: str | None
    status: str
    error: str | None
    category_path: str | None
    label_source: LabelSource | None
    attempts: int
    created_at: datetime
    status_changed_at: datetime
    image_paths: list[str] = field(default_factory=list)  # relative to the media store
    suggestions: list[SuggestionRecord] = field(default_factory=list)  # oldest first
    reviews: list[ReviewRecord] = field(default_factory=list)  # oldest first


@dataclass(frozen=True)
class ModelProgress:
    version: str
    is_active: bool
    suggested: int  # products with a suggestion from this version
    remaining: int  # products this version should still classify (what activation enqueues)

    @property
    def total(self) -> int:
        return self.suggested + self.remaining

    @property
    def fraction(self) -> float:
        return self.suggested / self.total if self.total else 1.0


# --------------------------------------------------------------------------- the tree
def category_paths(session: Session) -> list[str]:
    """Every category path, in tree order (a parent right before its children)."""
    paths = session.scalars(select(Category.path)).all()
    return sorted(paths, key=lambda p: tuple(p.split(SEPARATOR)))


def _prefixes(path: str) -> Iterable[str]:
    parts = path.split(SEPARATOR)
    for depth in range(1, len(parts) + 1):
        yield SEPARATOR.join(parts[:depth])


def _latest_suggestion_ids() -> Select:
    return select(func.max(Suggestion.id).label("sid")).group_by(Suggestion.product_id)


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

    latest = _latest_suggestion_ids().subquery()
    # The verdict on the newest suggestion, if a reviewer gave one.
    verdict = (
        select(Review.suggestion_id, func.max(Review.id).label("rid"))
        .group_by(Review.suggestion_id)
        .subquery()
    )
    last_review = aliased(Review)
    rows = session.execute(
        select(
            Suggestion.path,
            Product.status,
            Product.label_source,
            last_review.action,
            func.count(),
        )
        .join(latest, latest.c.sid == Suggestion.id)
        .join(Product, Product.id == Suggestion.product_id)
        .outerjoin(verdict, verdict.c.suggestion_id == Suggestion.id)
        .outerjoin(last_review, last_review.id == verdict.c.rid)
        .where(Suggestion.path != "")
        .group_by(Suggestion.path, Product.status, Product.label_source, last_review.action)
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


# --------------------------------------------------------------------------- products
def _in_branch(path: str, include_subcategories: bool):
    if include_subcategories:
        return or_(
            Category.path == path, Category.path.startswith(path + SEPARATOR, autoescape=True)
        )
    return Category.path == path


def _branch_query(path: str | None, include_subcategories: bool) -> Select:
    q = (
        select(Product.id)
        .join(Category, Category.id == Product.category_id)
        .where(Product.status == ProductStatus.ACCEPTED)
    )
    if path:
        q = q.where(_in_branch(path, include_subcategories))
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


def _first_images(session: Session, product_ids: Sequence[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    for start in range(0, len(product_ids), _IN_CHUNK):
        chunk = list(product_ids[start : start + _IN_CHUNK])
        for pid, stored in session.execute(
            select(ProductImage.product_id, ProductImage.stored_path)
            .where(ProductImage.product_id.in_(chunk))
            .order_by(ProductImage.id.desc())
        ):
            out[pid] = stored  # descending ids: the first photo is written last
    return out


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
    images = _first_images(session, ids)
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


def product_history(session: Session, product_id: int) -> ProductHistory:
    """A product with its photos, every suggestion (with its model version) and every review."""
    product = session.get(Product, product_id)
    if product is None:
        raise CatalogViewError(f"product {product_id} does not exist; pick one from the catalog")
    suggestions = session.execute(
        select(Suggestion, ModelVersion.version)
        .join(ModelVersion, ModelVersion.id == Suggestion.model_version_id)
        .where(Suggestion.product_id == product_id)
        .order_by(Suggestion.id)
    ).all()
    reviews = session.execute(
        select(Review, Category.path)
        .outerjoin(Category, Category.id == Review.category_id)
        .where(Review.product_id == product_id)
        .order_by(Review.id)
    ).all()
    images = session.scalars(
        select(ProductImage.stored_path)
        .where(ProductImage.product_id == product_id)
        .order_by(ProductImage.id)
    ).all()
    category = session.get(Category, product.category_id) if product.category_id else None
    return ProductHistory(
        product_id=product.id,
        title=product.title,
        external_id=product.external_id,
        status=str(product.status),
        error=product.error,
        category_path=category.path if category else None,
        label_source=product.label_source,
        attempts=product.attempts,
        created_at=product.created_at,
        status_changed_at=product.status_changed_at,
        image_paths=list(images),
        suggestions=[
            SuggestionRecord(
                suggestion_id=s.id,
                model_version=version,
                path=s.path,
                confidence=s.confidence,
                source=str(s.source),
                open_set=bool(s.open_set),
                levels=s.levels,
                created_at=s.created_at,
            )
            for s, version in suggestions
        ],
        reviews=[
            ReviewRecord(
                review_id=r.id,
                reviewer=r.reviewer,
                action=str(r.action),
                category_path=path,
                suggestion_id=r.suggestion_id,
                note=r.note,
                created_at=r.created_at,
            )
            for r, path in reviews
        ],
    )


def product_states(session: Session, product_ids: Sequence[int]) -> list[ProductState]:
    """Where each product of ``product_ids`` stands (in the given order; unknown ids left out)."""
    ids = list(dict.fromkeys(product_ids))
    found: dict[int, ProductState] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        latest = (
            select(Suggestion.product_id, func.max(Suggestion.id).label("sid"))
            .where(Suggestion.product_id.in_(chunk))
            .group_by(Suggestion.product_id)
            .subquery()
        )
        rows = session.execute(
            select(Product, Category.path, Suggestion.path, Suggestion.confidence)
            .outerjoin(Category, Category.id == Product.category_id)
            .outerjoin(latest, latest.c.product_id == Product.id)
            .outerjoin(Suggestion, Suggestion.id == latest.c.sid)
            .where(Product.id.in_(chunk))
        ).all()
        for p, category_path, suggestion_path, confidence in rows:
            found[p.id] = ProductState(
                product_id=p.id,
                title=p.title,
                status=str(p.status),
                error=p.error,
                category_path=category_path,
                suggestion_path=suggestion_path,
                confidence=confidence,
                status_changed_at=p.status_changed_at,
            )
    return [found[i] for i in ids if i in found]


def oldest_pending(session: Session) -> tuple[ProductState, float] | None:
    """The product waiting longest for a worker (``pending``), and for how many seconds."""
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


# --------------------------------------------------------------------------- models
def model_progress(session: Session, version: str) -> ModelProgress:
    """How far ``version`` got: products it suggested for, and products it should still classify
    (waiting ones, and those labelled by another model; never those labelled by people)."""
    mv = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
    if mv is None:
        raise CatalogViewError(f"no registered model version {version!r}")
    suggested = (
        session.scalar(
            select(func.count(func.distinct(Suggestion.product_id))).where(
                Suggestion.model_version_id == mv.id
            )
        )
        or 0
    )
    has_own = exists().where(
        Suggestion.product_id == Product.id, Suggestion.model_version_id == mv.id
    )
    remaining = (
        session.scalar(
            select(func.count())
            .select_from(Product)
            .where(
                Product.status.in_(
                    (
                        ProductStatus.PENDING,
                        ProductStatus.PROCESSING,
                        ProductStatus.SUGGESTED,
                        ProductStatus.ACCEPTED,
                    )
                ),
                ~Product.labelled_by_person,  # the same rule as the classifier's
                ~has_own,
            )
        )
        or 0
    )
    return ModelProgress(
        version=mv.version, is_active=bool(mv.is_active), suggested=suggested, remaining=remaining
    )
