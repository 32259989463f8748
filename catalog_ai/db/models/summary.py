"""Figures kept beside the rows they count, so that a page of a large catalogue reads a few
rows instead of aggregating a million.

- :class:`ProductStatusCount` and :class:`ProductStatusDelta`: how many products are in each
  status, exact at every moment. Database triggers on ``products`` (see migration
  ``0008_scale``) *insert* a delta row per change; nothing updates a shared counter row in the
  writer's transaction, so concurrent writers never wait on one another (nor deadlock) for a
  count. The count is ``n`` plus the deltas not folded yet; folding them into ``n``
  (``catalog_ai.services.status_counts.fold_status_deltas``, a beat task) keeps that sum short.
- :class:`BranchFigure` and :class:`SummaryRefresh`: the catalogue tree's figures per category
  (products, acceptance and review figures), refreshed as a whole by a periodic task and read
  with the time they were computed (``catalog_ai.services.branch_figures``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from catalog_ai.db.base import Base

__all__ = ["BranchFigure", "ProductStatusCount", "ProductStatusDelta", "SummaryRefresh"]


class ProductStatusCount(Base):
    """Products per status, as of the last fold of :class:`ProductStatusDelta`."""

    __tablename__ = "product_status_counts"

    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class ProductStatusDelta(Base):
    """A change of the count of products in ``status`` (written by triggers only)."""

    __tablename__ = "product_status_deltas"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(16))
    delta: Mapped[int] = mapped_column(BigInteger)


class BranchFigure(Base):
    """One category's figures over its whole branch (itself and everything below it), as
    :class:`catalog_ai.services.browse.BranchStats` holds them."""

    __tablename__ = "branch_figures"

    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    products: Mapped[int] = mapped_column(default=0)
    labelled_by_people: Mapped[int] = mapped_column(default=0)
    classified: Mapped[int] = mapped_column(default=0)
    decided: Mapped[int] = mapped_column(default=0)
    accepted_as_suggested: Mapped[int] = mapped_column(default=0)
    reviewed: Mapped[int] = mapped_column(default=0)
    reviewed_correct: Mapped[int] = mapped_column(default=0)


class SummaryRefresh(Base):
    """When a summary (``name``, e.g. ``branch_figures``) was last computed, and how long that
    took."""

    __tablename__ = "summary_refreshes"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    refreshed_at: Mapped[datetime]
    seconds: Mapped[float] = mapped_column(Float)
    rows: Mapped[int] = mapped_column(default=0)
    # Whole-catalogue figures computed with the summary (photos, categories holding products).
    figures: Mapped[dict[str, Any]] = mapped_column(default=dict)
