"""A reviewer's verdict on a product's suggestion."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from catalog_ai.db.base import Base
from catalog_ai.db.types import str_enum

if TYPE_CHECKING:
    from catalog_ai.db.models.category import Category
    from catalog_ai.db.models.product import Product
    from catalog_ai.db.models.suggestion import Suggestion

__all__ = ["Review", "ReviewAction"]


class ReviewAction(enum.StrEnum):
    ACCEPT = "accept"  # the suggested path, as is
    ACCEPT_PARTIAL = "accept_partial"  # an ancestor of the suggested path
    CORRECT = "correct"  # another existing category
    NEW_CATEGORY = "new_category"  # a category created for this product
    REJECT = "reject"  # belongs nowhere in the tree


class Review(Base):
    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(
        ForeignKey("products.id", ondelete="CASCADE"), index=True
    )
    # SET NULL: the verdict outlives the suggestion it was about.
    suggestion_id: Mapped[int | None] = mapped_column(
        ForeignKey("suggestions.id", ondelete="SET NULL"), index=True
    )
    reviewer: Mapped[str] = mapped_column(String(255))
    action: Mapped[ReviewAction] = mapped_column(str_enum(ReviewAction, "review_action"))
    category_id: Mapped[int | None] = mapped_column(  # the final category
        ForeignKey("categories.id", ondelete="RESTRICT"), index=True
    )
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    product: Mapped[Product] = relationship(back_populates="reviews")
    suggestion: Mapped[Suggestion | None] = relationship()
    category: Mapped[Category | None] = relationship()

    def __repr__(self) -> str:
        return f"Review(id={self.id!r}, product_id={self.product_id!r}, action={self.action!r})"
