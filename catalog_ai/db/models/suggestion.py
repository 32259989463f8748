"""What a model version suggests for a product (the stored form of a Decision)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Float, ForeignKey, String, UniqueConstraint, func, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from catalog_ai.db.base import Base
from catalog_ai.db.types import str_enum

if TYPE_CHECKING:
    from catalog_ai.db.models.category import Category
    from catalog_ai.db.models.model_version import ModelVersion
    from catalog_ai.db.models.product import Product

__all__ = ["Suggestion", "SuggestionSource"]


class SuggestionSource(enum.StrEnum):
    HEAD = "head"  # the trained hierarchical head
    PROTOTYPE = "prototype"  # nearest-neighbour match on embeddings (few-shot categories)
    ABSTAIN = "abstain"  # not confident even at the top level


class Suggestion(Base):
    __tablename__ = "suggestions"
    __table_args__ = (
        # One suggestion per product and model: a redelivered task cannot add a second one.
        UniqueConstraint("product_id", "model_version_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    model_version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="RESTRICT"), index=True
    )
    # NULL when the model abstained at the root.
    category_id: Mapped[int | None] = mapped_column(
        ForeignKey("categories.id", ondelete="RESTRICT"), index=True
    )
    path: Mapped[str] = mapped_column(String(1024), default="", server_default="")
    # Per depth, the top-k: [[{"path": "Fruit", "probability": 0.97}, ...], ...]
    levels: Mapped[list[Any]] = mapped_column(default=list)
    # The review queue shows the least confident first.
    confidence: Mapped[float] = mapped_column(Float, index=True)
    source: Mapped[SuggestionSource] = mapped_column(
        str_enum(SuggestionSource, "suggestion_source")
    )
    open_set: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # The prototype-memory revision of the model version the suggestion used (see
    # PrototypeRevision); NULL for a model without prototype memory, or a suggestion made
    # before revisions were recorded.
    memory_revision: Mapped[int | None]

    product: Mapped[Product] = relationship(back_populates="suggestions", foreign_keys=[product_id])
    model_version: Mapped[ModelVersion] = relationship()
    category: Mapped[Category | None] = relationship()

    def __repr__(self) -> str:
        return (
            f"Suggestion(id={self.id!r}, product_id={self.product_id!r}, path={self.path!r}, "
            f"confidence={self.confidence!r}, source={self.source!r})"
        )
