"""Embeddings of every catalog photo, per model version: what search and near-duplicate
detection look through.

Classification stores the embedding of each upload it classifies; the labelled catalog
(imported or reviewed products, which are never re-classified) is embedded by ``embed_catalog``
when a model is activated. Progress is tracked per version by counting rows: the database is the
truth, so an interrupted run just continues.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog_ai.db import Embedding, ProductImage, conflict_insert
from catalog_ai.db.queries import model_version_by_name
from catalog_ai.errors import CatalogAIError, ImageError
from catalog_ai.photos.store import MediaStore

__all__ = [
    "EmbeddingProgress",
    "compute_embeddings",
    "embedding_progress",
    "images_to_embed",
    "store_embeddings",
]


@dataclass(frozen=True)
class EmbeddingProgress:
    model_version: str
    embedded: int
    images: int

    @property
    def done(self) -> bool:
        return self.embedded >= self.images


def images_to_embed(
    session: Session, version: str, *, limit: int | None = None
) -> list[tuple[int, str]]:
    """``(image id, stored path)`` of photos with no embedding for ``version`` yet, in id order."""
    mv = model_version_by_name(session, version)
    done = select(Embedding.image_id).where(Embedding.model_version_id == mv.id)
    q = (
        select(ProductImage.id, ProductImage.stored_path)
        .where(ProductImage.id.not_in(done))
        .order_by(ProductImage.id)
    )
    return [(i, path) for i, path in session.execute(q.limit(limit) if limit else q).all()]


def embedding_progress(session: Session, version: str) -> EmbeddingProgress:
    mv = model_version_by_name(session, version)
    embedded = session.scalar(
        select(func.count()).select_from(Embedding).where(Embedding.model_version_id == mv.id)
    )
    images = session.scalar(select(func.count()).select_from(ProductImage))
    return EmbeddingProgress(version, int(embedded or 0), int(images or 0))


def compute_embeddings(
    predictor, media: MediaStore, images: Sequence[tuple[int, str]]
) -> list[tuple[int, np.ndarray]]:
    """Embed photos in batches (no session open). A photo that cannot be read, decoded or run
    through the network is skipped alone (its product's own classification reports why); the
    rest of its batch is embedded."""
    ready: list[tuple[int, np.ndarray]] = []
    out: list[tuple[int, np.ndarray]] = []
    for image_id, stored in images:
        try:
            ready.append((image_id, predictor.prepare(media.read(stored), name=stored)))
        except (ImageError, OSError, CatalogAIError):  # CatalogAIError: a path leaving the store
            continue
    for start in range(0, len(ready), predictor.batch_size):
        chunk = ready[start : start + predictor.batch_size]
        results = predictor.analyse_each([sq for _, sq in chunk])
        out.extend(
            (image_id, result[0].embeddings[result[1]])
            for (image_id, _), result in zip(chunk, results, strict=True)
            if not isinstance(result, str)
        )
    return out


def store_embeddings(
    session: Session, version: str, vectors: Sequence[tuple[int, np.ndarray]]
) -> int:
    """Insert embeddings, ignoring ones another worker stored meanwhile; returns how many rows."""
    if not vectors:
        return 0
    mv = model_version_by_name(session, version)
    rows = [
        Embedding.row(vector, image_id=image_id, model_version_id=mv.id)
        for image_id, vector in vectors
    ]
    session.execute(
        conflict_insert(session, Embedding.__table__)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["image_id", "model_version_id"])
    )
    return len(rows)
