"""``Idempotency-Key``: a client's retry of a create gets the first answer, never a second product.

The key is claimed in the same transaction as the product it makes (:func:`claim_key`, then
:func:`remember_product`): if that transaction rolls back (the photos were refused), the key is
free again and a corrected request may use it. Two requests with one key at once cannot both
create: the second's ``INSERT ... ON CONFLICT DO NOTHING`` waits (PostgreSQL) until the first
commits, then finds its row. Keys belong to an API key: two shops' keys never collide.

The same key with a *different* request (another fingerprint, :func:`request_fingerprint`) is
refused (:class:`IdempotencyKeyReused`) rather than answered with the first product: that is a
client bug, and answering it silently would hide a lost product.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from catalog_ai.db import IdempotencyKey, conflict_insert
from catalog_ai.errors import CatalogAIError

__all__ = [
    "IdempotencyError",
    "IdempotencyKeyReused",
    "claim_key",
    "remember_product",
    "request_fingerprint",
]

MAX_KEY_CHARS = 255


class IdempotencyError(CatalogAIError):
    """An ``Idempotency-Key`` that cannot be used (empty, too long, still being answered)."""


class IdempotencyKeyReused(IdempotencyError):
    """The key was sent before with a different request."""


def request_fingerprint(fields: Mapping[str, Any], photos: Sequence[tuple[str, str]]) -> str:
    """sha256 of a request: its fields (JSON, sorted) and each photo's ``(name, sha256)`` in
    order; the photos' bytes are hashed by the caller, as it reads them."""
    text = json.dumps(
        {"fields": dict(fields), "photos": [list(p) for p in photos]},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def claim_key(session: Session, api_key_id: int, key: str, fingerprint: str) -> int | None:
    """Claim ``key`` for this request. ``None``: it is the first with this key (create, then
    :func:`remember_product`); else the product the same request made before.

    Raises :class:`IdempotencyKeyReused` when the key came with another request.
    """
    if not 1 <= len(key.strip()) <= MAX_KEY_CHARS:
        raise IdempotencyError(
            f"an Idempotency-Key has 1 to {MAX_KEY_CHARS} characters; send a UUID per request"
        )
    table = IdempotencyKey.__table__
    claimed = session.scalar(
        conflict_insert(session, table)
        .values(api_key_id=api_key_id, key=key, request_hash=fingerprint, product_id=None)
        .on_conflict_do_nothing()
        .returning(table.c.id)
    )
    if claimed is not None:
        return None
    row = session.execute(
        select(IdempotencyKey.request_hash, IdempotencyKey.product_id).where(
            IdempotencyKey.api_key_id == api_key_id, IdempotencyKey.key == key
        )
    ).one()
    if row.request_hash != fingerprint:
        raise IdempotencyKeyReused(
            f"Idempotency-Key {key!r} was sent before with a different request; send a new key "
            "for a new request"
        )
    if row.product_id is None:  # committed without a product: cannot happen through the API
        raise IdempotencyError(f"Idempotency-Key {key!r} made no product; send a new key")
    product_id: int = row.product_id
    return product_id


def remember_product(session: Session, api_key_id: int, key: str, product_id: int) -> None:
    """Record the product the request that claimed ``key`` made (same transaction)."""
    session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.api_key_id == api_key_id, IdempotencyKey.key == key)
        .values(product_id=product_id)
    )
