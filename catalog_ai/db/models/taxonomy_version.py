"""One import of the category tree; categories remember the version that added them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from catalog_ai.db.base import Base

__all__ = ["TaxonomyVersion"]


class TaxonomyVersion(Base):
    __tablename__ = "taxonomy_versions"

    # The version number itself: increasing, never reused by the ORM.
    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    source: Mapped[str] = mapped_column(String(1024))  # "folder:/path", "google:file", "fewshot"
    note: Mapped[str] = mapped_column(Text, default="", server_default="")
    n_categories: Mapped[int] = mapped_column(default=0, server_default="0")
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)

    def __repr__(self) -> str:
        return f"TaxonomyVersion(id={self.id!r}, source={self.source!r}, n={self.n_categories!r})"
