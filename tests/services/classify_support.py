"""What the classification and re-queueing tests share: ingesting photos, reading rows back."""

from __future__ import annotations

from sqlalchemy import func, select

from catalog_ai.db import ModelVersion, Product, Suggestion, unit_of_work
from catalog_ai.photos.store import MediaStore
from catalog_ai.services.ingest import ingest_files


def ingest(media: MediaStore, files, runner=None) -> list[int]:
    """Ingest ``files``; with ``runner``, wait for it to classify them (else they stay pending)."""
    with unit_of_work() as session:
        created = ingest_files(session, files, media=media, dispatcher=runner).created
    if runner is not None:
        runner.drain()
    return created


def model_id(version: str) -> int:
    with unit_of_work() as session:
        return session.scalar(select(ModelVersion.id).where(ModelVersion.version == version))


def all_products() -> dict[int, Product]:
    with unit_of_work() as session:
        return {p.id: p for p in session.scalars(select(Product))}


def suggestions_per_product(model_version_id: int) -> dict[int, int]:
    with unit_of_work() as session:
        return dict(
            session.execute(
                select(Suggestion.product_id, func.count())
                .where(Suggestion.model_version_id == model_version_id)
                .group_by(Suggestion.product_id)
            ).all()
        )
