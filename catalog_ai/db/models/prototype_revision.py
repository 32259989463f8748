"""One numbered change to a model version's prototype memory, learnt from a single review.

The memory a version uses at revision ``R`` is its bundle's prototype files (revision 0, never
rewritten) plus the rows ``1..R`` of that version applied in order: every suggestion records the
revision it used, so it can be explained and reproduced. The example's embedding is stored here,
not referenced, so that deleting the product (or recomputing its embeddings) cannot change the
memory of a past revision.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from catalog_ai.db.base import Base

__all__ = ["PrototypeRevision"]


class PrototypeRevision(Base):
    __tablename__ = "prototype_revisions"
    __table_args__ = (
        # The numbering is the database's to keep: two reviews racing for the same revision
        # cannot both get it.
        UniqueConstraint("model_version_id", "revision"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    model_version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE")
    )
    revision: Mapped[int]  # 1, 2, 3, ... per model version
    path: Mapped[str] = mapped_column(String(1024))  # the category the example teaches
    category_id: Mapped[int | None] = mapped_column(
        ForeignKey("categories.id", ondelete="SET NULL"), index=True
    )
    review_id: Mapped[int | None] = mapped_column(
        ForeignKey("reviews.id", ondelete="SET NULL"), index=True
    )
    dim: Mapped[int]
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # the raw embedding, float32 little-endian
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    def __repr__(self) -> str:
        return (
            f"PrototypeRevision(model_version_id={self.model_version_id!r}, "
            f"revision={self.revision!r}, path={self.path!r})"
        )
