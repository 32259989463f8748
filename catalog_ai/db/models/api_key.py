"""A key for the HTTP API: a name, a scope, who acts with it, and a hash of its secret."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from catalog_ai.db.base import Base
from catalog_ai.db.types import str_enum

__all__ = ["ApiKey", "ApiScope", "IdempotencyKey"]


class ApiScope(enum.StrEnum):
    """What a key may do; each scope includes the ones before it."""

    READ = "read"  # look: products, the queue, categories, models, search, classify
    WRITE = "write"  # also create products
    REVIEW = "review"  # also review products
    ADMIN = "admin"  # also activate models


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    # The public part of the token ("cai_<prefix>_<secret>"): the row is found by it, then the
    # secret's hash compared in constant time. Only the hash of the whole token is stored.
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    token_hash: Mapped[str] = mapped_column(String(128))
    scope: Mapped[ApiScope] = mapped_column(str_enum(ApiScope, "api_scope"))
    owner: Mapped[str] = mapped_column(String(255))  # the reviewer a review with this key records
    rate_limit_per_minute: Mapped[int | None]  # None: the CATALOG_AI_API_RATE_LIMIT default
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    # The rate limit's current fixed window, shared by every API process through the database.
    window_started_at: Mapped[datetime | None]
    window_requests: Mapped[int] = mapped_column(default=0, server_default="0")

    def __repr__(self) -> str:
        return f"ApiKey(id={self.id!r}, name={self.name!r}, scope={self.scope!r})"


class IdempotencyKey(Base):
    """An ``Idempotency-Key`` a client sent with ``POST /v1/products``, and what it created."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("api_key_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    # sha256 of the request: the same key with a different request is refused (422), not
    # silently answered with the first product.
    request_hash: Mapped[str] = mapped_column(String(64))
    product_id: Mapped[int | None] = mapped_column(
        ForeignKey("products.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
