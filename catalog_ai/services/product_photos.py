"""A product's photos checked one by one before any row is written, and read back (for
:mod:`catalog_ai.services.products`): read within the byte limit, hashed, looked up among the
catalogue's photos, and their header probed by the same safe loader as ingest
(:mod:`catalog_ai.photos.decode`). A bad photo fails alone, with its reason and a ``problem``
an entry point can map to a status: ``too_large`` (over ``CATALOG_AI_MAX_IMAGE_BYTES``),
``too_large`` also for a photo over ``CATALOG_AI_MAX_IMAGE_PIXELS`` or too large to decode, as
the API's other photo routes say), ``not_a_photo`` (anything else the loader refuses: the format,
the aspect ratio, a damaged header) and ``duplicate`` (the bytes are already another product's).

An entry point that refuses to read an upload past the byte limit (the HTTP API reads each in
pieces) hands it over as :class:`Unread`, so that it fails alone like the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog_ai.db import ProductImage
from catalog_ai.errors import ImageError
from catalog_ai.photos import decode as images
from catalog_ai.photos.decode import ImageInfo
from catalog_ai.photos.messages import too_many_bytes
from catalog_ai.photos.store import content_hash
from catalog_ai.services.ingest import Upload

__all__ = [
    "DUPLICATE",
    "NOT_A_PHOTO",
    "TOO_LARGE",
    "CheckedPhoto",
    "PhotoOutcome",
    "PhotoRecord",
    "Unread",
    "check_photos",
    "first_image_ids",
    "photo_record",
    "product_with_photo",
]

TOO_LARGE, NOT_A_PHOTO, DUPLICATE = "too_large", "not_a_photo", "duplicate"

# The loader's refusals of a photo too large in pixels: they name the setting that would let it
# in, or say it is too large to decode (kept in step with the API's photo_problem).
_PIXEL_LIMITS = ("CATALOG_AI_MAX_IMAGE_PIXELS", "too large to decode")


@dataclass(frozen=True)
class Unread:
    """An upload not read because it is over the byte limit: only its name and size."""

    name: str
    size: int


@dataclass(frozen=True)
class PhotoOutcome:
    name: str  # the upload's file name, or the path
    image_id: int | None  # its photo row (this product's); None: not stored with it
    duplicate_of: int | None = None  # the product that already has these bytes
    error: str | None = None  # why it was not stored
    problem: str | None = None  # too_large | not_a_photo | duplicate; None when stored


@dataclass
class CheckedPhoto:
    name: str
    source_url: str | None
    digest: str | None = None  # of the bytes, when they reached us
    data: bytes | None = None  # only when usable so far
    info: ImageInfo | None = None
    error: str | None = None
    problem: str | None = None
    duplicate_of: int | None = None
    repeat: bool = False  # the same bytes as an earlier photo of this request
    image_id: int | None = None

    @property
    def usable(self) -> bool:
        return self.info is not None and self.duplicate_of is None and not self.repeat

    def outcome(self, product_id: int | None) -> PhotoOutcome:
        if self.repeat:
            return PhotoOutcome(
                self.name, None, product_id, "the same photo is given twice", DUPLICATE
            )
        return PhotoOutcome(self.name, self.image_id, self.duplicate_of, self.error, self.problem)


def check_photos(
    session: Session,
    uploads: Sequence[Upload | Unread],
    urls: Sequence[str | None],
    max_bytes: int,
    max_pixels: int | None,
) -> list[CheckedPhoto]:
    """Each upload checked, in order; nothing is stored or written."""
    seen: set[str] = set()
    checked = []
    for upload, url in zip(uploads, urls, strict=True):
        name = _name(upload)
        item = CheckedPhoto(name=name, source_url=url)
        checked.append(item)
        if isinstance(upload, Unread):
            item.error, item.problem = too_many_bytes(upload.size, max_bytes), TOO_LARGE
            continue
        try:
            if isinstance(upload, tuple):
                # An upload already reached us: its size is known, whatever the limit.
                data = images.read_bytes(upload[1], max_bytes=max_bytes, name=name)
            else:
                data = images.read_bytes(Path(upload), max_bytes=max_bytes)
        except ImageError as exc:
            item.error, item.problem = exc.reason, _read_problem(upload, max_bytes)
            if isinstance(upload, tuple):
                item.digest = content_hash(bytes(upload[1]))
            continue
        digest = item.digest = content_hash(data)
        if digest in seen:
            item.repeat = True
            continue
        seen.add(digest)
        item.duplicate_of = product_with_photo(session, digest)
        if item.duplicate_of is not None:
            item.error = f"the photo is already product {item.duplicate_of}'s"
            item.problem = DUPLICATE
            continue
        try:
            item.info = images.probe_header(data, source=name, max_pixels=max_pixels)
        except ImageError as exc:
            too_large = any(marker in exc.reason for marker in _PIXEL_LIMITS)
            item.error, item.problem = exc.reason, TOO_LARGE if too_large else NOT_A_PHOTO
            continue
        item.data = data
    return checked


def _name(upload: Upload | Unread) -> str:
    if isinstance(upload, Unread):
        return upload.name
    return upload[0] if isinstance(upload, tuple) else str(upload)


def _read_problem(upload: Upload, max_bytes: int) -> str:
    if isinstance(upload, tuple):
        size = len(upload[1])
    else:
        try:
            size = Path(upload).stat().st_size
        except OSError:
            return NOT_A_PHOTO
    return TOO_LARGE if size > max_bytes else NOT_A_PHOTO


def product_with_photo(session: Session, digest: str) -> int | None:
    """The product whose photo has these bytes (``content_hash`` is unique), if any."""
    return session.scalar(
        select(ProductImage.product_id).where(ProductImage.content_hash == digest).limit(1)
    )


# --- reading back ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhotoRecord:
    image_id: int
    position: int
    width: int
    height: int
    size_bytes: int
    format: str
    content_hash: str
    stored_path: str  # relative to the media store
    source_url: str | None


def photo_record(p: ProductImage) -> PhotoRecord:
    return PhotoRecord(
        p.id, p.position, p.width, p.height, p.size_bytes, p.format, p.content_hash,
        p.stored_path, p.source_url,
    )  # fmt: skip


def first_image_ids(session: Session, product_ids: Sequence[int]) -> dict[int, int]:
    """Each product's first photo (by position, then id); products without one left out."""
    rows = session.execute(
        select(ProductImage.product_id, ProductImage.id)
        .where(ProductImage.product_id.in_(list(product_ids)))
        .order_by(ProductImage.product_id, ProductImage.position.desc(), ProductImage.id.desc())
    ).all()
    return {pid: image_id for pid, image_id in rows}  # the last row of each product wins
