"""Audits of auto-accepted products, the per-version tally they are drawn from, and the record of
each promote-if-better decision.

An **audit** is a uniform random sample of a model's auto-accepts (each auto-accept is audited
with probability ``CATALOG_AI_AUDIT_RATE``, drawn when it is recorded): the product keeps its
accepted label, and a person checks it in the review queue. Because the draw does not depend on
the photo, the resolved audits estimate the precision of auto-accept without bias; the tally
(how many a version auto-accepted) says how many products each audit stands for.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from catalog_ai.db.base import Base
from catalog_ai.db.types import str_enum

__all__ = ["Audit", "AuditTally", "AuditVerdict", "PromotionRecord"]


class AuditVerdict(enum.StrEnum):
    CORRECT = "correct"  # the auto-accepted category is right
    INCORRECT = "incorrect"  # a person gave another category (``category_id``)


class Audit(Base):
    __tablename__ = "audits"
    __table_args__ = (
        # One audit per suggestion: a redelivered record cannot draw a second one.
        UniqueConstraint("suggestion_id"),
        # The review queue's audit filter reads the open ones, oldest first.
        Index(None, "resolved_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(
        ForeignKey("products.id", ondelete="CASCADE"), index=True
    )
    # SET NULL: the verdict outlives the suggestion it checked.
    suggestion_id: Mapped[int | None] = mapped_column(
        ForeignKey("suggestions.id", ondelete="SET NULL")
    )
    model_version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    rate: Mapped[float] = mapped_column(Float)  # the audit rate it was drawn with
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    resolved_at: Mapped[datetime | None]
    verdict: Mapped[AuditVerdict | None] = mapped_column(str_enum(AuditVerdict, "audit_verdict"))
    reviewer: Mapped[str | None] = mapped_column(String(255))
    # The category the person gave (the auto-accepted one when correct); its path kept as text
    # too, so the record survives a later rename of the tree.
    category_id: Mapped[int | None] = mapped_column(
        ForeignKey("categories.id", ondelete="SET NULL"), index=True
    )
    true_path: Mapped[str | None] = mapped_column(String(1024))
    review_id: Mapped[int | None] = mapped_column(
        ForeignKey("reviews.id", ondelete="SET NULL"), index=True
    )

    def __repr__(self) -> str:
        return f"Audit(id={self.id!r}, product_id={self.product_id!r}, verdict={self.verdict!r})"


class AuditTally(Base):
    """How many products a version auto-accepted, and how many of them were drawn for audit:
    the size of the auto-accepted stratum, which suggestions alone no longer tell once a later
    model or a person relabels a product."""

    __tablename__ = "audit_tallies"

    model_version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    auto_accepted: Mapped[int] = mapped_column(default=0, server_default="0")
    audited: Mapped[int] = mapped_column(default=0, server_default="0")


class PromotionRecord(Base):
    """Why a candidate version was (or was not) made active by ``--promote-if-better``."""

    __tablename__ = "promotion_decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    # The active version it was compared with (None: there was none).
    against_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL"), index=True
    )
    promoted: Mapped[bool]
    margin: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)
    comparison: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
