"""A node of the store's category tree (``Fruit > Apple > Granny-Smith``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from catalog_ai.db.base import Base

# The taxonomy parsers refuse what these columns cannot hold: one source for both.
from catalog_ai.db.limits import MAX_ID_CHARS, MAX_NAME_CHARS, MAX_PATH_CHARS

__all__ = ["Category"]


class Category(Base):
    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(String(MAX_PATH_CHARS), unique=True)  # " > "-joined
    name: Mapped[str] = mapped_column(String(MAX_NAME_CHARS))
    # RESTRICT: a parent cannot vanish from under its children.
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("categories.id", ondelete="RESTRICT"), index=True
    )
    depth: Mapped[int]
    external_id: Mapped[str | None] = mapped_column(String(MAX_ID_CHARS), unique=True)  # Google/CSV
    source: Mapped[str] = mapped_column(String(32))  # import | folder | fewshot | review
    taxonomy_version: Mapped[int] = mapped_column(
        ForeignKey("taxonomy_versions.id", ondelete="RESTRICT"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    parent: Mapped[Category | None] = relationship(back_populates="children", remote_side=[id])
    children: Mapped[list[Category]] = relationship(
        back_populates="parent", order_by="Category.name"
    )

    def __repr__(self) -> str:
        return f"Category(id={self.id!r}, path={self.path!r})"
