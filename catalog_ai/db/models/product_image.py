"""A photo of a product, stored once per content hash in the media directory."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, ForeignKey, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from catalog_ai.db.base import Base

if TYPE_CHECKING:
    from catalog_ai.db.models.embedding import Embedding
    from catalog_ai.db.models.product import Product
    from catalog_ai.photos.decode import ImageInfo
    from catalog_ai.photos.store import StoredFile

__all__ = ["ProductImage"]


class ProductImage(Base):
    __tablename__ = "product_images"
    # A product's photos in the order they were stored: "its first photo" for one product, or
    # for the 20 rows of a queue page, is the front of this index, not an aggregate over
    # every photo.
    __table_args__ = (Index(None, "product_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the file
    stored_path: Mapped[str] = mapped_column(String(1024))  # relative to the media directory
    width: Mapped[int]
    height: Mapped[int]
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    format: Mapped[str] = mapped_column(String(16))  # PIL format name, e.g. "JPEG"
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # The photo's place among its product's photos (a shop's "Image Position"); 0 = first.
    position: Mapped[int] = mapped_column(default=0, server_default="0")
    source_url: Mapped[str | None] = mapped_column(String(2048))  # where a feed fetched it from

    product: Mapped[Product] = relationship(back_populates="images")
    embeddings: Mapped[list[Embedding]] = relationship(
        back_populates="image", cascade="all, delete-orphan", passive_deletes=True
    )

    @classmethod
    def from_stored(cls, stored: StoredFile, info: ImageInfo) -> ProductImage:
        """The row of a photo just put in the media store (``info``: its probed header)."""
        return cls(
            content_hash=stored.content_hash,
            stored_path=stored.relative_path,
            width=info.width,
            height=info.height,
            size_bytes=info.size_bytes,
            format=info.format,
        )

    def __repr__(self) -> str:
        return (
            f"ProductImage(id={self.id!r}, product_id={self.product_id!r}, "
            f"path={self.stored_path!r})"
        )
