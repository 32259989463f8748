"""Ingest: new product photos into the media store and the catalog, to be classified.

Each file becomes one ``pending`` product whose classification is enqueued after the commit.
Nothing is lost: a file whose bytes cannot be used (empty, not an image, a decompression bomb)
becomes a ``failed`` product with the reason, once per distinct bytes (ingesting the same bad file
again reports that product again), and an identical photo already in the catalog is reported with
the product that has it instead of being stored twice. A file that could not be read at all
(missing, unreadable, a folder, over the size limit, which is checked before reading) is reported
with its reason but makes no product: nothing of it reached the catalog, and a row per attempt
could never be retried anyway. Only the header is read here; the worker decodes the pixels, so
damage inside the image data fails the product there.
"""

from __future__ import annotations

import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import FromClause, delete, select
from sqlalchemy.orm import Session

from catalog_ai.db import Product, ProductImage, ProductStatus, conflict_insert
from catalog_ai.dispatch import Dispatcher, after_commit
from catalog_ai.errors import CatalogAIError, ImageError
from catalog_ai.photos import decode as images
from catalog_ai.photos.decode import ImageInfo
from catalog_ai.photos.store import MediaStore, StoredFile, content_hash

__all__ = [
    "FailedFile",
    "IngestError",
    "IngestResult",
    "Upload",
    "attach_photo",
    "ingest_files",
    "insert_or_nothing",
    "insert_product",
]

#: A file to ingest: a path, or ``(name, bytes)`` for an upload that never touched the disk.
Upload = Path | str | tuple[str, bytes]


class IngestError(CatalogAIError):
    """The ingest request itself cannot work (not one bad file: those become failed products)."""


@dataclass(frozen=True)
class FailedFile:
    file: str
    product_id: int | None  # the ``failed`` product that records it; None: nothing was read
    reason: str


@dataclass
class IngestResult:
    created: list[int] = field(default_factory=list)  # new pending products, in file order
    duplicates: list[tuple[str, int]] = field(default_factory=list)  # (file, existing product id)
    failed: list[FailedFile] = field(default_factory=list)
    ingested: list[tuple[str, int]] = field(default_factory=list)  # (file, its new product id)

    def merge(self, other: IngestResult) -> None:
        self.created.extend(other.created)
        self.ingested.extend(other.ingested)
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

    Safe against concurrent writers (another ingest, an import, a dashboard upload): the rows
    are written with ``INSERT ... ON CONFLICT DO NOTHING``, so a photo or an external id another
    transaction claimed first makes this file a duplicate of that product instead of an
    ``IntegrityError`` that would roll back the whole chunk.
    """
    files = list(files)
    if external_id is not None:
        _check_external_id(external_id, len(files))
    result = IngestResult()
    new_by_hash: dict[str, int] = {}
    for file in files:
        label = _label(file)
        product_title = (title if title is not None else Path(label).stem)[:512]
        digest: str | None = None
        try:
            data = _read(file, label, max_bytes)
            digest = content_hash(data)
            existing = new_by_hash.get(digest) or _product_id_with_photo(session, digest)
            if existing is not None:
                result.duplicates.append((label, existing))
                continue
            if external_id is not None:
                # Raises when another photo holds the id. Not a duplicate photo (checked just
                # above), so a holder here refused these very bytes before: they fail below again
                # and are reported with that product.
                _external_id_holder(session, external_id, digest)
            info = images.probe_header(data, source=label, max_pixels=max_pixels)
        except ImageError as exc:
            if digest is None:
                digest = _refused_digest(file)
            pid = (
                None
                if digest is None
                else _failed_product(session, digest, product_title, external_id, exc.reason)
            )
            result.failed.append(FailedFile(label, pid, exc.reason))
            continue
        stored = media.put(data, image_format=info.format, digest=digest)
        pid = insert_product(
            session, title=product_title, external_id=external_id, status=ProductStatus.PENDING
        )
        if pid is None:  # a concurrent writer took the external id since the check above
            result.duplicates.append((label, _taken_external_id(session, external_id, digest)))
            continue
        winner = attach_photo(session, pid, stored, info)
        if winner is not None:  # a concurrent writer stored the same photo first
            result.duplicates.append((label, winner))
            continue
        new_by_hash[digest] = pid
        result.ingested.append((label, pid))
    result.created = [pid for _, pid in result.ingested]
    if dispatcher is not None and result.created:
        after_commit(session, dispatcher).classify(result.created)
    return result


# The columns a photo row gets from its stored file (the rest are keys and server defaults).
_PHOTO_COLUMNS = ("content_hash", "stored_path", "width", "height", "size_bytes", "format")


def insert_or_nothing(session: Session, table: FromClause) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` for ``table`` on this session's database."""
    return conflict_insert(session, table).on_conflict_do_nothing()


def attach_photo(
    session: Session, product_id: int, stored: StoredFile, info: ImageInfo
) -> int | None:
    """Give the new product ``product_id`` its photo; ``None`` when that worked.

    When another product already has the same bytes (committed by a concurrent writer, or
    waited for on PostgreSQL until that writer committed), the new product is deleted again
    and that other product's id is returned: the caller reports a duplicate.
    """
    image = ProductImage.from_stored(stored, info)  # one place maps a stored file to a row
    row = {key: getattr(image, key) for key in _PHOTO_COLUMNS}
    stmt = (
        insert_or_nothing(session, ProductImage.__table__)
        .values(product_id=product_id, **row)
        .returning(ProductImage.__table__.c.id)
    )
    if session.scalar(stmt) is not None:
        return None
    session.execute(delete(Product).where(Product.id == product_id))
    winner = _product_id_with_photo(session, stored.content_hash)
    if winner is None:  # cannot happen: the conflict was on this very hash
        raise IngestError(f"photo {stored.content_hash} was refused by the database; try again")
    return winner


def _label(file: Upload) -> str:
    return file[0] if isinstance(file, tuple) else str(file)


def _read(file: Upload, label: str, max_bytes: int | None) -> bytes:
    if isinstance(file, tuple):
        return images.read_bytes(file[1], max_bytes=max_bytes, name=label)
    return images.read_bytes(Path(file), max_bytes=max_bytes)


def _refused_digest(file: Upload) -> str | None:
    """The hash of bytes refused before they were hashed: an upload's (it reached us, whatever
    its size), an empty file's; ``None`` for a path that could not be read or was too big to."""
    if isinstance(file, tuple):
        return content_hash(bytes(file[1]))
    try:
        st = Path(file).stat()
    except OSError:
        return None
    return content_hash(b"") if stat.S_ISREG(st.st_mode) and st.st_size == 0 else None


def _product_id_with_photo(session: Session, digest: str) -> int | None:
    return session.scalar(
        select(ProductImage.product_id).where(ProductImage.content_hash == digest).limit(1)
    )


def insert_product(session: Session, **values: object) -> int | None:
    """A new product's id, or ``None`` when a unique value in ``values`` is already taken."""
    stmt = insert_or_nothing(session, Product.__table__).values(**values)
    pid: int | None = session.scalar(stmt.returning(Product.__table__.c.id))
    return pid


def _failed_product(
    session: Session, digest: str, title: str, external_id: str | None, reason: str
) -> int:
    """The failed product that records these refused bytes: the existing one when the same bytes
    were refused before (re-ingesting a bad file adds nothing), else a new one."""
    existing = session.scalar(select(Product.id).where(Product.rejected_hash == digest))
    if existing is not None:
        return existing
    pid = insert_product(
        session,
        title=title,
        external_id=external_id,
        status=ProductStatus.FAILED,
        error=reason,
        rejected_hash=digest,
    )
    if pid is not None:
        return pid
    # Refused by a unique value: the same bytes recorded by a concurrent writer, or the
    # external id taken.
    existing = session.scalar(select(Product.id).where(Product.rejected_hash == digest))
    if existing is not None:
        return existing
    return _taken_external_id(session, external_id, digest)


def _taken_external_id(session: Session, external_id: str | None, digest: str) -> int:
    """After an insert refused on ``external_id``: the product holding it, if it has these bytes."""
    holder = None if external_id is None else _external_id_holder(session, external_id, digest)
    if holder is None:  # refused, yet no holder: only a writer deleting it meanwhile does that
        raise IngestError(f"the database refused product {external_id!r}; ingest the file again")
    return holder


def _check_external_id(external_id: str, n_files: int) -> None:
    if n_files != 1:
        raise IngestError(
            f"--external-id {external_id!r} names one product, but {n_files} files were given; "
            "ingest them one at a time, or leave out --external-id"
        )


def _external_id_holder(session: Session, external_id: str, digest: str) -> int | None:
    """The product holding ``external_id`` when it has these very bytes (the same upload sent
    twice: a duplicate); ``None`` when the id is free. Raises when another photo holds it."""
    holder = session.execute(
        select(Product.id, Product.rejected_hash).where(Product.external_id == external_id)
    ).first()
    if holder is None:
        return None
    holder_id: int = holder.id
    if holder.rejected_hash == digest or _product_id_with_photo(session, digest) == holder_id:
        return holder_id
    raise IngestError(
        f"external id {external_id!r} already belongs to product {holder.id}; give another id"
    )
