"""Webhooks: subscriptions, the events that happened, and their deliveries with every attempt.

As in saleor, the three are kept apart: an event is written once, in the transaction of what
it reports (an outbox); a delivery row per subscription is written beside it, before anything is
sent, so an event can never be lost between the commit and the send; each try is an attempt row.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, String, Text, UniqueConstraint, func, text
from sqlalchemy.orm import Mapped, mapped_column

from catalog_ai.db.base import Base
from catalog_ai.db.types import str_enum

__all__ = ["DeliveryStatus", "Webhook", "WebhookAttempt", "WebhookDelivery", "WebhookEvent"]


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # to send (again) at next_attempt_at
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # gave up: a 3xx/4xx answer, or the retry time ran out


class Webhook(Base):
    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[Any]] = mapped_column(default=list)  # event type names
    # Kept readable (not hashed): every delivery is signed with it. Shown once at creation.
    secret: Mapped[str] = mapped_column(String(128))
    is_active: Mapped[bool] = mapped_column(default=True, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    def __repr__(self) -> str:
        return f"Webhook(id={self.id!r}, url={self.url!r}, events={self.events!r})"


class WebhookEvent(Base):
    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)  # "evt_<uuid4 hex>", public
    type: Mapped[str] = mapped_column(String(64), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "webhook_id"),
        # The sweep: "pending and due".
        Index(None, "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"))
    webhook_id: Mapped[int] = mapped_column(
        ForeignKey("webhooks.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[DeliveryStatus] = mapped_column(
        str_enum(DeliveryStatus, "delivery_status"),
        default=DeliveryStatus.PENDING,
        server_default=DeliveryStatus.PENDING.value,
    )
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    delivered_at: Mapped[datetime | None]


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    attempted_at: Mapped[datetime] = mapped_column(server_default=func.now())
    duration_ms: Mapped[float | None] = mapped_column(Float)
    status_code: Mapped[int | None]
    response_body: Mapped[str | None] = mapped_column(Text)  # the first 2,000 characters
    error: Mapped[str | None] = mapped_column(Text)  # connection refused, timeout, ...
