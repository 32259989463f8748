"""An image embedding computed by one model version (float32 little-endian bytes)."""

from __future__ import annotations

from collections.abc import Sequence
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

__all__ = ["Embedding", "decode_vectors", "encode_vector"]

_DTYPE = "<f4"  # fixed byte order: the bytes mean the same on every machine


def encode_vector(array: ArrayLike) -> tuple[int, bytes]:
    """``(dim, bytes)`` of a 1-D vector as stored: float32, little-endian."""
    import numpy as np

    vector = np.asarray(array, dtype=_DTYPE)
    if vector.ndim != 1 or vector.size == 0:
        raise ValueError(f"an embedding must be a non-empty 1-D array, got shape {vector.shape}")
    return int(vector.size), vector.tobytes()


def decode_vectors(
    dims: Sequence[int], blobs: Sequence[bytes], ids: Sequence[int] | None = None
) -> np.ndarray:
    """Stored vectors as one ``(n, dim)`` float32 matrix (one copy, however many rows).

    ``ids`` (the rows' embedding ids) name a corrupt row in the error. All rows must have one
    width: the vectors of one model version, for one matrix. No rows: a ``(0, 0)`` matrix.
    """
    import numpy as np

    for k, (dim, blob) in enumerate(zip(dims, blobs, strict=True)):
        if len(blob) != dim * 4:
            name = f"embedding {ids[k]}" if ids is not None else "an embedding"
            raise DatabaseError(
                f"{name} is corrupt: {len(blob)} bytes stored, {dim * 4} expected for "
                f"dim={dim}; recompute it"
            )
    widths = sorted(set(dims))
    if len(widths) > 1:
        raise DatabaseError(
            f"the embeddings of one model version have different widths ({widths}); "
            "recompute them with one model"
        )
    if not widths:
        return np.empty((0, 0), np.float32)
    # One copy, straight into the result: median 80 ms for 20,000 x 1,280 values on the dev
    # machine, against 122 ms for stacking per-row arrays and 139 ms for joining the bytes first
    # (each of those copies twice).
    matrix = np.empty((len(blobs), widths[0]), np.float32)
    for k, blob in enumerate(blobs):
        matrix[k] = np.frombuffer(blob, dtype=_DTYPE)
    return matrix


class Embedding(Base):
    __tablename__ = "embeddings"
    __table_args__ = (UniqueConstraint("image_id", "model_version_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("product_images.id", ondelete="CASCADE"))
    # Indexed on its own: loading every embedding of one model builds the search index. (A
    # (model_version_id, id) index was measured for the per-host index cache's catch-up at 1M
    # embeddings and did not help: docs/BENCHMARKS.md, issue 16.)
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
        dim, vector = encode_vector(array)
        return cls(dim=dim, vector=vector, **fields)

    @staticmethod
    def row(array: ArrayLike, **fields: Any) -> dict[str, Any]:
        """The column values of an embedding holding ``array``, for a bulk ``INSERT``."""
        dim, vector = encode_vector(array)
        return {"dim": dim, "vector": vector, **fields}

    def to_array(self) -> np.ndarray:
        """The vector as a writable float32 array of length ``dim``."""
        vector: np.ndarray = decode_vectors([self.dim], [self.vector], [self.id])[0]
        return vector

    def __repr__(self) -> str:
        return (
            f"Embedding(id={self.id!r}, image_id={self.image_id!r}, "
            f"model_version_id={self.model_version_id!r}, dim={self.dim!r})"
        )
