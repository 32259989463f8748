"""A trained model bundle known to the catalog; at most one is active."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from catalog_ai.db.base import Base

__all__ = ["ModelVersion"]


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        # The database, not the code, guarantees a single active model: a partial unique index
        # over the rows WHERE is_active (both SQLite and PostgreSQL support these).
        Index(
            "uq_model_versions_one_active",
            "is_active",
            unique=True,
            sqlite_where=text("is_active"),
            postgresql_where=text("is_active"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(64), unique=True)  # the bundle's version id
    backbone: Mapped[str] = mapped_column(String(128))
    bundle_path: Mapped[str] = mapped_column(String(1024))
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    taxonomy_fingerprint: Mapped[str] = mapped_column(String(64))
    is_active: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    activated_at: Mapped[datetime | None]
    notes: Mapped[str | None] = mapped_column(Text)
    # The version this one was derived from (re-calibrated, new thresholds, few-shot examples):
    # versions are immutable, a change makes a new one.
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL"), index=True
    )

    def __repr__(self) -> str:
        return f"ModelVersion(id={self.id!r}, version={self.version!r}, active={self.is_active!r})"
