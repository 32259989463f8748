"""An image embedding computed by one model version (float32 little-endian bytes)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, LargeBinary, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from catalog_ai.db.base import Base
from catalog_ai.errors import DatabaseError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike

    from catalog_ai.db.models.model_version import ModelVersion
    from catalog_ai.db.models.product_image import ProductImage

__all__ = ["Embedding"]

_DTYPE = "<f4"  # fixed byte order: the bytes mean the same on every machine


class Embedding(Base):
    __tablename__ = "embeddings"
    __table_args__ = (UniqueConstraint("image_id", "model_version_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("product_images.id", ondelete="CASCADE"))
    # Indexed on its own: loading every embedding of one model builds the search index.
    model_version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    dim: Mapped[int]
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    image: Mapped[ProductImage] = relationship(back_populates="embeddings")
    model_version: Mapped[ModelVersion] = relationship()

    @classmethod
    def from_array(cls, array: ArrayLike, **fields: Any) -> Embedding:
        """An embedding holding ``array`` (1-D, converted to float32); ``fields`` set the rest."""
        import numpy as np

        vector = np.asarray(array, dtype=_DTYPE)
        if vector.ndim != 1 or vector.size == 0:
            raise ValueError(
                f"an embedding must be a non-empty 1-D array, got shape {vector.shape}"
            )
        return cls(dim=int(vector.size), vector=vector.tobytes(), **fields)

    def to_array(self) -> np.ndarray:
        """The vector as a writable float32 array of length ``dim``."""
        import numpy as np

        expected = self.dim * 4
        if len(self.vector) != expected:
            raise DatabaseError(
                f"embedding {self.id} is corrupt: {len(self.vector)} bytes stored, "
                f"{expected} expected for dim={self.dim}; recompute it"
            )
        return np.frombuffer(self.vector, dtype=_DTYPE).astype(np.float32)

    def __repr__(self) -> str:
        return (
            f"Embedding(id={self.id!r}, image_id={self.image_id!r}, "
            f"model_version_id={self.model_version_id!r}, dim={self.dim!r})"
        )
