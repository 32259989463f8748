"""The catalogue tree's figures per branch (a category and everything below it), and the
summary that keeps them for a large catalogue.

Definitions (per branch; a suggestion counts for its own category and every ancestor):

- ``products``: products whose final category lies in the branch (status ``accepted``);
- ``labelled_by_people``: of those, the ones whose category a person gave (import, review,
  few-shot example: :attr:`LabelSource.is_human`), the rest were auto-accepted from a model;
- ``classified``: products whose current (newest) suggestion points into the branch;
- ``decided``: of those, products that got a final verdict (``accepted``, automatically or by a
  reviewer, or ``rejected``);
- ``acceptance rate`` = ``accepted_as_suggested / decided``: accepted as suggested means accepted
  automatically, or a reviewer accepted the suggestion (fully, or down to a shallower depth);
  corrected, new-category and rejected verdicts count against it;
- ``accuracy`` = ``reviewed_correct / reviewed``: of the reviewer verdicts on suggestions in the
  branch, the share that accepted the suggested path as it was (a partial acceptance means the
  suggestion went too deep, so it is not counted as correct).

:func:`compute_branch_stats` reads every product, suggestion and review and rolls them up a tree
of every category: 5 ms for the Grocery tree's 81 leaves, 0.15-0.9 s for a 10,000-category tree
even with only 10,000 products, 7-12 s at 1,000,000 products (docs/BENCHMARKS.md, issue 16). So
:func:`branch_figures` reads the ``branch_figures`` summary that :func:`refresh_branch_figures`
writes (the worker's beat, every ``CATALOG_AI_FIGURES_INTERVAL`` seconds), and says when it was
computed, whenever that computation took longer than ``CATALOG_AI_FIGURES_LIVE_MS``; a cheaper
one is simply done again on each read, always current. A summary missing or older than three
intervals (no beat running) is not trusted: the figures are computed then, slow but right.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from catalog_ai.db import (
    BranchFigure,
    Category,
    LabelSource,
    Product,
    ProductImage,
    ProductStatus,
    Review,
    ReviewAction,
    Suggestion,
    SummaryRefresh,
    utc_now,
)
from catalog_ai.db.queries import categories_stamp, newest_suggestion_outcomes
from catalog_ai.settings import get_settings
from catalog_ai.taxonomy import SEPARATOR

__all__ = [
    "SUMMARY_NAME",
    "BranchFigures",
    "BranchStats",
    "branch_figures",
    "branch_stats",
    "catalog_figures",
    "compute_branch_stats",
    "fresh_summary",
    "refresh_branch_figures",
]

SUMMARY_NAME = "branch_figures"
_ACCEPTED_VERDICTS = (ReviewAction.ACCEPT, ReviewAction.ACCEPT_PARTIAL)
_COUNTS = (
    "products",
    "labelled_by_people",
    "classified",
    "decided",
    "accepted_as_suggested",
    "reviewed",
    "reviewed_correct",
)


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


def _prefixes(path: str) -> Iterable[str]:
    parts = path.split(SEPARATOR)
    for depth in range(1, len(parts) + 1):
        yield SEPARATOR.join(parts[:depth])


def compute_branch_stats(session: Session) -> list[BranchStats]:
    """Figures per branch for every category, in tree order, computed now from every row (see
    the module docstring)."""
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


@dataclass(frozen=True)
class BranchFigures:
    """The tree's figures and when they were computed (``live``: just now, by this read)."""

    stats: list[BranchStats]
    as_of: datetime
    live: bool


def refresh_branch_figures(
    session: Session, *, clock: Callable[[], datetime] = utc_now
) -> SummaryRefresh:
    """Compute the figures and replace the summary with them (one transaction: readers see the
    old summary or the new one)."""
    started = time.perf_counter()
    stats = compute_branch_stats(session)
    session.execute(delete(BranchFigure))
    rows = [{"path": b.path, **{k: getattr(b, k) for k in _COUNTS}} for b in stats]
    for start in range(0, len(rows), 2_000):
        session.execute(insert(BranchFigure), rows[start : start + 2_000])
    refresh = session.get(SummaryRefresh, SUMMARY_NAME) or SummaryRefresh(name=SUMMARY_NAME)
    refresh.refreshed_at = clock()
    refresh.seconds = round(time.perf_counter() - started, 3)
    refresh.rows = len(rows)
    refresh.figures = _catalog_figures(session)
    session.add(refresh)
    session.flush()
    return refresh


#: The last summary read, per database: reused while neither the summary nor the categories
#: changed (the tree page reads 10,000 rows otherwise, ~0.3 s at 10,000 categories).
_read_cache: dict[str, tuple[tuple[Any, ...], list[BranchStats]]] = {}


def _stored(session: Session, refresh: SummaryRefresh) -> list[BranchStats]:
    stamp = categories_stamp(session)
    key = (refresh.refreshed_at, *stamp)
    where = stamp[0]
    cached = _read_cache.get(where)
    if cached is not None and cached[0] == key:
        return cached[1]
    counts = [getattr(BranchFigure, k) for k in _COUNTS]
    rows = session.execute(
        select(Category.path, Category.name, Category.depth, *counts).outerjoin(
            BranchFigure, BranchFigure.path == Category.path
        )
    ).all()
    # A category added since the refresh is listed with zeros until the next one.
    out = [
        BranchStats(path, name, depth, *(n or 0 for n in figures))
        for path, name, depth, *figures in rows
    ]
    out.sort(key=lambda b: tuple(b.path.split(SEPARATOR)))
    _read_cache[where] = (key, out)
    return out


def _catalog_figures(session: Session) -> dict[str, int]:
    return {
        "images": session.scalar(select(func.count()).select_from(ProductImage)) or 0,
        "leaf_categories_with_products": session.scalar(
            select(func.count(func.distinct(Product.category_id))).where(
                Product.category_id.is_not(None)
            )
        )
        or 0,
    }


def fresh_summary(session: Session, *, now: datetime) -> SummaryRefresh | None:
    """The refreshed summary when it is fresh and computing the figures costs more than
    ``CATALOG_AI_FIGURES_LIVE_MS`` (see the module docstring); None: compute them now."""
    settings = get_settings()
    refresh = session.get(SummaryRefresh, SUMMARY_NAME)
    if refresh is None or refresh.seconds * 1000 < settings.figures_live_ms:
        return None
    if now - refresh.refreshed_at > timedelta(seconds=3 * settings.figures_interval):
        return None
    return refresh


def catalog_figures(session: Session, *, clock: Callable[[], datetime] = utc_now) -> dict[str, Any]:
    """Photos and categories holding products: from the fresh summary (with ``as_of``), or
    counted now (``as_of`` None)."""
    refresh = fresh_summary(session, now=clock())
    if refresh is not None and refresh.figures:
        return {**refresh.figures, "as_of": refresh.refreshed_at}
    return {**_catalog_figures(session), "as_of": None}


def branch_figures(session: Session, *, clock: Callable[[], datetime] = utc_now) -> BranchFigures:
    """The tree's figures: computed now for a small catalogue, else the fresh summary (see the
    module docstring)."""
    now = clock()
    refresh = fresh_summary(session, now=now)
    if refresh is not None:
        return BranchFigures(_stored(session, refresh), refresh.refreshed_at, live=False)
    return BranchFigures(compute_branch_stats(session), now, live=True)


def branch_stats(session: Session) -> list[BranchStats]:
    """Figures per branch for every category, in tree order (:func:`branch_figures`)."""
    return branch_figures(session).stats


# The summary's columns, in BranchStats' order (_stored builds it positionally).
assert [f.name for f in fields(BranchStats)][3:] == list(_COUNTS)
