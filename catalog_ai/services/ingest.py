"""Ingest: new product photos into the media store and the catalog, to be classified.

Each file becomes one ``pending`` product whose classification is enqueued after the commit.
Nothing is lost: a file that cannot be used (empty, over-size, not an image, a decompression
bomb) becomes a ``failed`` product with the reason, and an identical photo already in the catalog
is reported with the product that has it instead of being stored twice. Only the header is read
here; the worker decodes the pixels, so damage inside the image data fails the product there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog_ai import images
from catalog_ai.db import Product, ProductImage, ProductStatus
from catalog_ai.dispatch import Dispatcher, after_commit
from catalog_ai.errors import CatalogAIError, ImageError
from catalog_ai.media import MediaStore, content_hash

__all__ = ["IngestError", "FailedFile", "IngestResult", "Upload", "ingest_files"]

#: A file to ingest: a path, or ``(name, bytes)`` for an upload that never touched the disk.
Upload = Path | str | tuple[str, bytes]


class IngestError(CatalogAIError):
    """The ingest request itself cannot work (not one bad file: those become failed products)."""


@dataclass(frozen=True)
class FailedFile:
    file: str
    product_id: int  # the ``failed`` product that records it
    reason: str


@dataclass
class IngestResult:
    created: list[int] = field(default_factory=list)  # new pending products, in file order
    duplicates: list[tuple[str, int]] = field(default_factory=list)  # (file, existing product id)
    failed: list[FailedFile] = field(default_factory=list)

    def merge(self, other: IngestResult) -> None:
        self.created.extend(other.created)
        self.duplicates.extend(other.duplicates)
        self.failed.extend(other.failed)


def ingest_files(
    session: Session,
    files: Iterable[Upload],
    *,
    media: MediaStore,
    dispatcher: Dispatcher | None,
    title: str | None = None,
    external_id: str | None = None,
    max_bytes: int | None = None,
    max_pixels: int | None = None,
) -> IngestResult:
    """One product per file; ``dispatcher`` gets their classification when the caller's
    transaction commits.

    ``title`` defaults to the file name without its suffix. ``external_id`` (the shop's own
    product id, unique) needs exactly one file. ``dispatcher=None`` leaves the products pending
    for a later sweep or an explicit ``dispatcher.classify``.
    Limits default to the settings.
    """
    files = list(files)
    if external_id is not None:
        _check_external_id(session, external_id, len(files))
    result = IngestResult()
    new_by_hash: dict[str, Product] = {}
    for file in files:
        label = _label(file)
        product_title = title if title is not None else Path(label).stem
        try:
            data = _read(file, label, max_bytes)
            digest = content_hash(data)
            existing = new_by_hash.get(digest) or _product_with_photo(session, digest)
            if existing is not None:
                session.flush()  # a product made earlier in this call needs its id
                result.duplicates.append((label, existing.id))
                continue
            info = images.probe_header(data, source=label, max_pixels=max_pixels)
        except ImageError as exc:
            product = Product(
                title=product_title[:512],
                external_id=external_id,
                status=ProductStatus.FAILED,
                error=exc.reason,
            )
            session.add(product)
            session.flush()
            result.failed.append(FailedFile(label, product.id, exc.reason))
            continue
        stored = media.put(data, image_format=info.format, digest=digest)
        product = Product(
            title=product_title[:512], external_id=external_id, status=ProductStatus.PENDING
        )
        product.images.append(ProductImage.from_stored(stored, info))
        session.add(product)
        new_by_hash[digest] = product
    session.flush()
    result.created = [p.id for p in new_by_hash.values()]
    if dispatcher is not None and result.created:
        after_commit(session, dispatcher).classify(result.created)
    return result


def _label(file: Upload) -> str:
    return file[0] if isinstance(file, tuple) else str(file)


def _read(file: Upload, label: str, max_bytes: int | None) -> bytes:
    if isinstance(file, tuple):
        return images.read_bytes(file[1], max_bytes=max_bytes, name=label)
    return images.read_bytes(Path(file), max_bytes=max_bytes)


def _product_with_photo(session: Session, digest: str) -> Product | None:
    return session.scalar(
        select(Product).join(ProductImage).where(ProductImage.content_hash == digest).limit(1)
    )


def _check_external_id(session: Session, external_id: str, n_files: int) -> None:
    if n_files != 1:
        raise IngestError(
            f"--external-id {external_id!r} names one product, but {n_files} files were given; "
            "ingest them one at a time, or leave out --external-id"
        )
    taken = session.scalar(select(Product.id).where(Product.external_id == external_id))
    if taken is not None:
        raise IngestError(
            f"external id {external_id!r} already belongs to product {taken}; give another id"
        )
