"""Webhooks: subscriptions, events written as an outbox, the delivery log, redelivery.

As in saleor, events, payloads and transport are kept apart. :func:`emit` writes the event and
one delivery row per active webhook subscribed to its type *in the caller's transaction*, so an
event exists exactly when what it reports was committed (a rollback leaves no event), and
nothing is lost between the commit and the send: once committed, the dispatcher is handed the
delivery ids (:meth:`~catalog_ai.dispatch.Dispatcher.deliver`), and should that hint be lost,
the periodic sweep finds every delivery still due (:func:`due_deliveries`). Sending, signing
and the back-off live in :mod:`catalog_ai.services.webhook_delivery`; the payloads in
:mod:`catalog_ai.services.webhook_payloads`.

Each event is one JSON object, ``{"event_id": "evt_…", "type": …, "created_at": …, "data":
{…}}``; ``event_id`` is the same on every try and for every webhook, so a receiver drops a
repeat by it. Deliveries are at least once and in no guaranteed order.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog_ai.db import (
    DeliveryStatus,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEvent,
    utc_now,
)
from catalog_ai.dispatch import after_commit
from catalog_ai.services.webhook_delivery import WebhookError, due_filter
from catalog_ai.services.webhook_signing import signature_problem, verify_signature

if TYPE_CHECKING:
    from catalog_ai.dispatch import Dispatcher

__all__ = [
    "EVENT_TYPES",
    "AttemptLog",
    "DeliveryLog",
    "WebhookError",
    "WebhookInfo",
    "add_webhook",
    "deliveries",
    "due_deliveries",
    "emit",
    "emit_many",
    "list_webhooks",
    "parse_events",
    "redeliver",
    "remove_webhook",
    "signature_problem",
    "subscribed_types",
    "validate_url",
    "verify_signature",
]

EVENT_TYPES: tuple[str, ...] = (
    "suggestion.created",
    "product.accepted",
    "product.failed",
    "model.activated",
)
_MAX_URL = 2048


@dataclass(frozen=True)
class WebhookInfo:
    id: int
    url: str
    events: list[str]
    is_active: bool
    created_at: datetime | None
    secret: str | None = None  # only when just created: it is shown once
    counts: dict[str, int] = field(default_factory=dict)  # deliveries by status


def validate_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL with a host, else a :class:`WebhookError`."""
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise WebhookError(
            f"{url!r} is not a webhook URL; give an absolute http:// or https:// URL, e.g. "
            "https://shop.example.com/hooks/catalog-ai"
        )
    if len(url) > _MAX_URL:
        raise WebhookError(f"the URL is {len(url)} characters long; at most {_MAX_URL} are kept")
    if any(c.isspace() for c in url):
        raise WebhookError(f"{url!r} contains white space; percent-encode it (%20)")
    return url


def parse_events(events: str | Iterable[str]) -> list[str]:
    """Event types from ``"a,b"`` or a list, checked against :data:`EVENT_TYPES`, in that order."""
    items = events.split(",") if isinstance(events, str) else list(events)
    wanted = {e.strip() for e in items if e.strip()}
    if not wanted:
        raise WebhookError(f"name at least one event type: {', '.join(EVENT_TYPES)}")
    unknown = sorted(wanted - set(EVENT_TYPES))
    if unknown:
        raise WebhookError(
            f"unknown event type {unknown[0]!r}; choose from {', '.join(EVENT_TYPES)}"
        )
    return [e for e in EVENT_TYPES if e in wanted]


def add_webhook(session: Session, url: str, events: str | Iterable[str]) -> WebhookInfo:
    """Subscribe ``url`` to ``events``; the returned info carries the signing secret, which is
    not shown again (``list_webhooks`` leaves it out)."""
    hook = Webhook(
        url=validate_url(url),
        events=parse_events(events),
        secret="whsec_" + secrets.token_urlsafe(32),
        is_active=True,
    )
    session.add(hook)
    session.flush()
    return _info(hook, secret=hook.secret)


def _info(hook: Webhook, *, secret: str | None = None, counts=None) -> WebhookInfo:
    return WebhookInfo(
        id=hook.id,
        url=hook.url,
        events=list(hook.events),
        is_active=bool(hook.is_active),
        created_at=hook.created_at,
        secret=secret,
        counts=dict(counts or {}),
    )


def list_webhooks(session: Session) -> list[WebhookInfo]:
    """Every webhook with its deliveries counted by status (secrets left out)."""
    counts: dict[int, dict[str, int]] = {}
    for hook_id, status, n in session.execute(
        select(WebhookDelivery.webhook_id, WebhookDelivery.status, func.count()).group_by(
            WebhookDelivery.webhook_id, WebhookDelivery.status
        )
    ):
        counts.setdefault(hook_id, {})[str(status)] = n
    hooks = session.scalars(select(Webhook).order_by(Webhook.id))
    return [_info(h, counts=counts.get(h.id)) for h in hooks]


def remove_webhook(session: Session, webhook_id: int) -> None:
    """Delete a webhook with its deliveries (the events stay for the other webhooks)."""
    hook = session.get(Webhook, webhook_id)
    if hook is None:
        raise WebhookError(f"webhook {webhook_id} does not exist; see: catalog-ai webhooks list")
    session.delete(hook)
    session.flush()


def subscribed_types(session: Session) -> dict[str, list[int]]:
    """Event type -> ids of the active webhooks subscribed to it (types nobody wants absent)."""
    out: dict[str, list[int]] = {}
    rows = session.execute(
        select(Webhook.id, Webhook.events).where(Webhook.is_active.is_(True)).order_by(Webhook.id)
    )
    for hook_id, events in rows:
        for kind in events or ():
            out.setdefault(str(kind), []).append(hook_id)
    return out


def emit(
    session: Session,
    type: str,
    payload: Mapping[str, Any],
    *,
    dispatcher: Dispatcher | None,
    now: datetime | None = None,
) -> str | None:
    """Record event ``type`` with ``payload`` (its ``data``) for every active webhook subscribed
    to it, in the caller's transaction; its public id, or None when nobody subscribes (then
    nothing is written). ``dispatcher`` gets the deliveries after the commit; None leaves them
    to the sweep."""
    return emit_many(session, [(type, payload)], dispatcher=dispatcher, now=now)[0]


def emit_many(
    session: Session,
    events: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    dispatcher: Dispatcher | None,
    now: datetime | None = None,
    subscribers: Mapping[str, list[int]] | None = None,
) -> list[str | None]:
    """:func:`emit` for several events at once (one query for the subscribers, one hand-over)."""
    for kind, _ in events:
        if kind not in EVENT_TYPES:
            raise WebhookError(f"unknown event type {kind!r}; one of {', '.join(EVENT_TYPES)}")
    if not events:
        return []
    hooks = subscribed_types(session) if subscribers is None else subscribers
    now = now or utc_now()
    ids: list[str | None] = []
    rows: list[tuple[WebhookEvent, list[int]]] = []
    for kind, data in events:
        targets = hooks.get(kind, [])
        if not targets:
            ids.append(None)
            continue
        event_id = "evt_" + uuid.uuid4().hex
        envelope = {
            "event_id": event_id,
            "type": kind,
            "created_at": now.isoformat(),
            "data": dict(data),
        }
        event = WebhookEvent(event_id=event_id, type=kind, payload=envelope, created_at=now)
        session.add(event)
        rows.append((event, targets))
        ids.append(event_id)
    if not rows:
        return ids
    session.flush()
    deliveries_ = [
        WebhookDelivery(event_id=event.id, webhook_id=hook_id, next_attempt_at=now)
        for event, targets in rows
        for hook_id in targets
    ]
    session.add_all(deliveries_)
    session.flush()
    if dispatcher is not None:
        after_commit(session, dispatcher).deliver([d.id for d in deliveries_])
    return ids


def due_deliveries(session: Session, *, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Ids of the deliveries to send now (oldest due first): what the sweep hands over. Only a
    hint: sending claims each one again (:func:`~.webhook_delivery.claim_delivery`)."""
    return list(
        session.scalars(
            select(WebhookDelivery.id)
            .where(*due_filter(now or utc_now()))
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
            .limit(limit)
        )
    )


def redeliver(
    session: Session,
    delivery_id: int,
    *,
    dispatcher: Dispatcher | None,
    now: datetime | None = None,
) -> None:
    """Send a delivery again, failed or delivered, with a new cycle of tries (the same event id
    and body; earlier attempts stay in the log)."""
    delivery = session.scalar(
        select(WebhookDelivery).where(WebhookDelivery.id == delivery_id).with_for_update()
    )
    if delivery is None:
        raise WebhookError(
            f"delivery {delivery_id} does not exist; see: catalog-ai webhooks deliveries"
        )
    hook = session.get(Webhook, delivery.webhook_id)
    if hook is None or not hook.is_active:
        raise WebhookError(f"the webhook of delivery {delivery_id} is not active")
    delivery.status = DeliveryStatus.PENDING
    delivery.attempts = 0
    delivery.next_attempt_at = now or utc_now()
    delivery.delivered_at = None
    session.flush()
    if dispatcher is not None:
        after_commit(session, dispatcher).deliver([delivery.id])


@dataclass(frozen=True)
class AttemptLog:
    attempted_at: datetime
    status_code: int | None
    duration_ms: float | None
    error: str | None
    response_body: str | None


@dataclass(frozen=True)
class DeliveryLog:
    id: int
    webhook_id: int
    url: str
    event_id: str
    type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    tries: list[AttemptLog] = field(default_factory=list)


def deliveries(
    session: Session,
    *,
    status: DeliveryStatus | str | None = None,
    webhook_id: int | None = None,
    event_id: str | None = None,
    delivery_id: int | None = None,
    limit: int = 50,
    with_attempts: bool = True,
) -> list[DeliveryLog]:
    """The delivery log, newest first, optionally with every attempt (oldest first)."""
    if status is not None:
        try:
            status = DeliveryStatus(status)
        except ValueError:
            choices = ", ".join(s.value for s in DeliveryStatus)
            raise WebhookError(f"unknown delivery status {status!r}; one of {choices}") from None
    q = (
        select(WebhookDelivery, Webhook.url, WebhookEvent.event_id, WebhookEvent.type)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )
    if status is not None:
        q = q.where(WebhookDelivery.status == status)
    if webhook_id is not None:
        q = q.where(WebhookDelivery.webhook_id == webhook_id)
    if event_id is not None:
        q = q.where(WebhookEvent.event_id == event_id)
    if delivery_id is not None:
        q = q.where(WebhookDelivery.id == delivery_id)
    rows = session.execute(q).all()
    tries: dict[int, list[AttemptLog]] = {}
    if with_attempts and rows:
        for a in session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_([d.id for d, *_ in rows]))
            .order_by(WebhookAttempt.id)
        ):
            tries.setdefault(a.delivery_id, []).append(
                AttemptLog(a.attempted_at, a.status_code, a.duration_ms, a.error, a.response_body)
            )
    return [
        DeliveryLog(
            id=d.id,
            webhook_id=d.webhook_id,
            url=url,
            event_id=eid,
            type=kind,
            status=d.status,
            attempts=d.attempts,
            next_attempt_at=d.next_attempt_at,
            last_status_code=d.last_status_code,
            last_error=d.last_error,
            created_at=d.created_at,
            delivered_at=d.delivered_at,
            tries=tries.get(d.id, []),
        )
        for d, url, eid, kind in rows
    ]
