"""Products with several photos, from the HTTP API and from shop feeds: :func:`create_product`.

A product is what a shop sells; its photos are checked one by one with the same safe loader and
limits as ingest (:mod:`catalog_ai.photos.decode`), and stored in the content-addressed media
store. What this module decides:

- **A bad photo fails alone.** It is reported in :attr:`ProductCreated.photos` with its reason
  and ``problem`` (``too_large``: over ``CATALOG_AI_MAX_IMAGE_BYTES``; ``not_a_photo``: anything
  else the loader refuses; ``duplicate``: the bytes are already another product's photo); the
  product keeps its good photos, in the order given (``position`` 0, 1, ...).
- **A product with no usable photo of its own** becomes a ``failed`` product with the reasons
  (as ingest records a refused file), so a feed's row is never lost; ``keep_failed=False`` (the
  HTTP API) raises :class:`PhotosRefused` instead, so that the caller can roll back and answer
  "refused" with nothing stored. Without an external id, a request whose photos are all already
  another product's is that product again (the same photo posted twice): ``created=False``.
- **A photo is one product's.** ``content_hash`` is unique: a photo another product has is
  reported as a duplicate of that product and not stored twice.
- **Idempotent by external id.** A second call with an external id that exists returns that
  product with ``created=False`` and changes nothing, except for a ``failed`` product without
  photos: posting it again with usable photos is its retry (it gets them and becomes pending).
- **Safe against concurrent writers**: rows are written with ``INSERT ... ON CONFLICT DO
  NOTHING`` (as ingest does), so two creates with one external id at once make one product
  (PostgreSQL makes the second insert wait for the first transaction, then finds its row).

A product a person labelled (``category_id`` with a human ``label_source``, e.g. a filled
``Product Category`` in a Shopify export) is ``accepted`` and not classified; any other new
product is ``pending`` and classified once the caller's transaction commits. A new ``failed``
product is announced to the webhooks (``product.failed``) after the commit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from catalog_ai.db import Category, LabelSource, Product, ProductImage, ProductStatus
from catalog_ai.db.types import utc_now
from catalog_ai.dispatch import Dispatcher, after_commit
from catalog_ai.errors import CatalogAIError
from catalog_ai.photos.store import MediaStore
from catalog_ai.services.ingest import Upload, insert_or_nothing, insert_product
from catalog_ai.services.product_photos import (
    DUPLICATE,
    CheckedPhoto,
    PhotoOutcome,
    Unread,
    check_photos,
    product_with_photo,
)
from catalog_ai.services.webhook_payloads import product_failed
from catalog_ai.services.webhooks import emit
from catalog_ai.settings import get_settings

__all__ = [
    "PhotoOutcome",
    "PhotosRefused",
    "ProductCreated",
    "ProductError",
    "Unread",
    "create_product",
    "product_answer",
]


class ProductError(CatalogAIError):
    """The request itself cannot work (no photo, an unknown category, a bad external id);
    ``field`` names the argument at fault, when one is."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass
class ProductCreated:
    product_id: int | None  # None: nothing was stored (no product can name these photos)
    created: bool  # False: the product existed already (same external id, or same photos)
    photos: list[PhotoOutcome] = field(default_factory=list)  # in the order given
    status: str = ProductStatus.PENDING.value


class PhotosRefused(CatalogAIError):
    """No photo of the request can be used (raised only with ``keep_failed=False``)."""

    def __init__(self, photos: list[PhotoOutcome]) -> None:
        self.photos = photos
        reasons = "; ".join(f"{p.name}: {p.error}" for p in photos)
        super().__init__(f"no usable photo: {reasons}")


def create_product(
    session: Session,
    photos: Sequence[Upload | Unread],
    *,
    media: MediaStore,
    dispatcher: Dispatcher | None,
    title: str = "",
    description: str = "",
    external_id: str | None = None,
    attributes: dict[str, Any] | None = None,
    category_id: int | None = None,
    label_source: LabelSource | None = None,
    source_urls: Sequence[str | None] | None = None,
    max_bytes: int | None = None,
    max_pixels: int | None = None,
    keep_failed: bool = True,
) -> ProductCreated:
    """One product with ``photos`` (see the module docstring for every rule).

    ``title`` defaults to the first photo's name without its suffix; ``source_urls`` (one per
    photo, ``None`` for a local one) is where a feed fetched each. Limits default to the
    settings. Never commits; ``dispatcher`` gets the classification after the commit.
    """
    uploads = list(photos)
    urls = _check_request(session, uploads, external_id, category_id, label_source, source_urls)
    limit = max_bytes if max_bytes is not None else get_settings().max_image_bytes
    checked = check_photos(session, uploads, urls, limit, max_pixels)
    values: dict[str, Any] = {
        "title": (title or Path(checked[0].name).stem)[:512],
        "description": description,
        "attributes": dict(attributes or {}),
    }
    existing = _by_external_id(session, external_id)
    if existing is not None and not _retry(session, existing, checked, values):
        return _existing(session, existing, checked)
    usable = [c for c in checked if c.usable]
    if not usable:
        dup = next((c.duplicate_of for c in checked if c.duplicate_of is not None), None)
        if existing is None and external_id is None and dup is not None:
            return _existing(session, dup, checked)
        if not keep_failed:
            raise PhotosRefused([c.outcome(existing) for c in checked])
        return _told(session, _failed(session, checked, values, external_id, existing), dispatcher)
    labelled = category_id is not None and label_source is not None
    status = ProductStatus.ACCEPTED if labelled else ProductStatus.PENDING
    final = {"status": status, "category_id": category_id, "label_source": label_source}
    if existing is None:
        pid = insert_product(session, external_id=external_id, **final, **values)
        if pid is None:  # a concurrent writer took the external id since the check above
            return _existing(session, _taken(session, external_id), checked)
    else:
        pid = existing
        _set(session, pid, error=None, **final)
    if not _attach(session, pid, usable, media):
        # Every photo lost a race with another writer: they are that writer's product's.
        if external_id is None:
            session.execute(delete(Product).where(Product.id == pid))
            return _existing(session, _first_duplicate(checked), checked)
        if not keep_failed:
            raise PhotosRefused([c.outcome(None) for c in checked])
        _set(session, pid, category_id=None, label_source=None)
        failed = _failed(session, checked, values, external_id, pid)
        failed.created = existing is None
        return _told(session, failed, dispatcher)
    if dispatcher is not None and not labelled:
        after_commit(session, dispatcher).classify([pid])
    return ProductCreated(pid, existing is None, [c.outcome(pid) for c in checked], status.value)


def product_answer(
    session: Session,
    product_id: int,
    photos: Sequence[Upload | Unread],
    *,
    max_bytes: int | None = None,
    max_pixels: int | None = None,
) -> ProductCreated:
    """The answer :func:`create_product` gives for ``photos`` sent again for the product they
    made (``created=False``): each photo named as its own, another product's, or refused. For a
    replayed request (an ``Idempotency-Key`` seen before); stores nothing."""
    limit = max_bytes if max_bytes is not None else get_settings().max_image_bytes
    uploads = list(photos)
    checked = check_photos(session, uploads, [None] * len(uploads), limit, max_pixels)
    return _existing(session, product_id, checked)


# --- checks ------------------------------------------------------------------------------------


def _check_request(
    session: Session,
    uploads: list[Upload | Unread],
    external_id: str | None,
    category_id: int | None,
    label_source: LabelSource | None,
    source_urls: Sequence[str | None] | None,
) -> list[str | None]:
    if not uploads:
        raise ProductError("a product needs at least one photo; add one", field="photos")
    if external_id is not None and not 1 <= len(external_id.strip()) <= 255:
        raise ProductError(
            "an external id has 1 to 255 characters; send the shop's product id",
            field="external_id",
        )
    if (category_id is None) != (label_source is None):
        raise ProductError("a label needs both a category and who gave it (label_source)")
    if label_source is not None and not label_source.is_human:
        raise ProductError(f"{label_source.value!r} is not a person's label; use import or review")
    if category_id is not None and session.get(Category, category_id) is None:
        raise ProductError(f"category {category_id} does not exist; import the taxonomy first")
    urls: list[str | None] = [None] * len(uploads) if source_urls is None else list(source_urls)
    if len(urls) != len(uploads):
        raise ProductError(f"{len(urls)} source urls for {len(uploads)} photos; give one each")
    return urls


# --- rows --------------------------------------------------------------------------------------


def _by_external_id(session: Session, external_id: str | None) -> int | None:
    if external_id is None:
        return None
    return session.scalar(select(Product.id).where(Product.external_id == external_id))


def _taken(session: Session, external_id: str | None) -> int:
    holder = _by_external_id(session, external_id)
    if holder is None:  # refused, yet no holder: only a writer deleting it meanwhile does that
        raise ProductError(f"the database refused product {external_id!r}; send it again")
    return holder


def _retry(session: Session, pid: int, checked: list[CheckedPhoto], values: dict[str, Any]) -> bool:
    """Whether the existing product ``pid`` is a failed one without photos that this request,
    with a usable photo, retries. Locks its row (PostgreSQL) so that one retry wins."""
    if not any(c.usable for c in checked):
        return False
    row = session.execute(
        select(Product.status).where(Product.id == pid).with_for_update()
    ).scalar_one_or_none()
    has_photo = _photo_ids(session, pid)
    if row != ProductStatus.FAILED or has_photo:
        return False
    _set(session, pid, rejected_hash=None, **values)
    return True


def _photo_ids(session: Session, pid: int) -> dict[str, int]:
    rows = session.execute(
        select(ProductImage.content_hash, ProductImage.id).where(ProductImage.product_id == pid)
    ).all()
    return {digest: image_id for digest, image_id in rows}


def _attach(session: Session, pid: int, usable: list[CheckedPhoto], media: MediaStore) -> int:
    """Store and attach the usable photos, positions in request order; how many were attached.
    One that a concurrent writer attached first becomes a duplicate of that writer's product."""
    table = ProductImage.__table__
    attached = 0
    for item in usable:
        assert item.data is not None and item.info is not None  # usable
        stored = media.put(item.data, image_format=item.info.format, digest=item.info.content_hash)
        row = ProductImage.from_stored(stored, item.info)
        stmt = (
            insert_or_nothing(session, table)
            .values(
                product_id=pid,
                content_hash=row.content_hash,
                stored_path=row.stored_path,
                width=row.width,
                height=row.height,
                size_bytes=row.size_bytes,
                format=row.format,
                position=attached,
                source_url=(item.source_url or None) and item.source_url[:2048],
            )
            .returning(table.c.id)
        )
        item.image_id = session.scalar(stmt)
        if item.image_id is not None:
            attached += 1
            continue
        winner = product_with_photo(session, stored.content_hash)
        item.duplicate_of, item.problem = winner, DUPLICATE
        item.error = f"the photo is already product {winner}'s"
    return attached


def _set(session: Session, pid: int, **values: Any) -> None:
    if "status" in values:
        values["status_changed_at"] = utc_now()
    session.execute(
        update(Product)
        .where(Product.id == pid)
        .values(**values)
        .execution_options(synchronize_session="fetch")
    )


def _first_duplicate(checked: list[CheckedPhoto]) -> int:
    return next(c.duplicate_of for c in checked if c.duplicate_of is not None)


def _existing(session: Session, pid: int, checked: list[CheckedPhoto]) -> ProductCreated:
    """The answer for a product that existed already: each photo named as the product's own
    photo, another product's, or refused, so that the same request gets the same answer."""
    own = _photo_ids(session, pid)
    outcomes = []
    for c in checked:
        if c.digest is not None and c.digest in own and not c.repeat:
            outcomes.append(PhotoOutcome(c.name, own[c.digest]))
        elif c.usable:
            outcomes.append(
                PhotoOutcome(
                    c.name, None, None, f"not added: product {pid} exists already", DUPLICATE
                )
            )
        else:
            outcomes.append(c.outcome(pid))
    status = session.scalar(select(Product.status).where(Product.id == pid))
    return ProductCreated(pid, False, outcomes, str(status.value if status else ""))


def _failed(
    session: Session,
    checked: list[CheckedPhoto],
    values: dict[str, Any],
    external_id: str | None,
    existing: int | None,
) -> ProductCreated:
    """The ``failed`` product that records a request without a usable photo. Without an external
    id, it is found again by a hash of the refused photos' hashes (so the same bad request
    posted twice is one failed product, and one bad photo is the product ingest made for it)."""
    reason = "no usable photo: " + "; ".join(
        f"{c.name}: {c.outcome(existing).error}" for c in checked
    )
    reason = reason[:4000]
    if existing is not None:
        _set(session, existing, status=ProductStatus.FAILED, error=reason)
        return ProductCreated(existing, False, [c.outcome(existing) for c in checked], "failed")
    key = None if external_id is not None else _request_hash(checked)
    if key is not None:
        found = session.scalar(select(Product.id).where(Product.rejected_hash == key))
        if found is not None:
            return _existing(session, found, checked)
    pid = insert_product(
        session,
        external_id=external_id,
        status=ProductStatus.FAILED,
        error=reason,
        rejected_hash=key,
        **values,
    )
    if pid is None:  # a concurrent writer recorded the same request first
        found = (
            _taken(session, external_id)
            if key is None
            else session.scalar(select(Product.id).where(Product.rejected_hash == key))
        )
        if found is None:
            raise ProductError("the database refused the failed product; send it again")
        return _existing(session, found, checked)
    return ProductCreated(pid, True, [c.outcome(pid) for c in checked], "failed")


def _told(
    session: Session, result: ProductCreated, dispatcher: Dispatcher | None
) -> ProductCreated:
    """``result``, after a ``product.failed`` event for a failed product it created (a shop
    feed's row whose photos all failed; subscribed webhooks hear of it after the commit)."""
    if result.created and result.status == ProductStatus.FAILED.value:
        product = session.get(Product, result.product_id)
        if product is not None:
            session.refresh(product)  # written by an INSERT statement: read what it wrote
            emit(session, "product.failed", product_failed(product), dispatcher=dispatcher)
    return result


def _request_hash(checked: list[CheckedPhoto]) -> str | None:
    if len(checked) == 1 and checked[0].digest is not None:
        return checked[0].digest
    parts = [c.digest or f"name:{c.name}" for c in checked]
    return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()
