"""Sending one webhook delivery: its signature, the back-off schedule, and claim, send, record.

A delivery is sent in three steps, like a classification, so that no transaction holds a row
lock while the network runs::

    with unit_of_work() as s:
        out = claim_delivery(s, delivery_id, lease_s=lease_for(timeout))  # or None: not due
    result = send(out, timeout_s=timeout)                                 # no session open
    with unit_of_work() as s:
        outcome = record_attempt(s, out, result, backoff=Backoff.from_settings(settings))

The claim is safe with any number of workers: it is one conditional ``UPDATE`` (on PostgreSQL
over a ``FOR UPDATE SKIP LOCKED`` sub-select) that moves ``next_attempt_at`` a lease into the
future, so no other worker finds the delivery due while this one sends. A worker that dies
mid-send leaves the lease to run out; the delivery is then due again and the sweep sends it:
at least once, never lost. Receivers recognise a repeat by its ``X-CatalogAI-Event-Id``.

Signing: :mod:`catalog_ai.services.webhook_signing`.

Retries: a 2xx answer delivers; no answer (refused, timed out), a 5xx, a 408 (the receiver
timed out reading) or a 429 (slow down; its ``Retry-After`` is honoured) is tried again after
the back-off. Any other 3xx or 4xx fails at once: the receiver understood and refused (a wrong
URL, a secret it does not know, a payload it rejects), and the same bytes would get the same
answer for a day; redirects are not followed, because the signed payload must only go where it
was configured to. ``catalog-ai webhooks redeliver ID`` sends it again once the cause is fixed.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from catalog_ai import __version__
from catalog_ai.db import (
    DeliveryStatus,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEvent,
    utc_now,
)
from catalog_ai.errors import CatalogAIError
from catalog_ai.services.webhook_signing import (
    ATTEMPT_HEADER,
    DELIVERY_HEADER,
    EVENT_HEADER,
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    body_bytes,
    signature_header,
)
from catalog_ai.settings import Settings

__all__ = [
    "Backoff",
    "DeliveryOutcome",
    "Outgoing",
    "SendResult",
    "WebhookError",
    "claim_delivery",
    "due_filter",
    "lease_for",
    "record_attempt",
    "retryable",
    "send",
]

#: 408: the receiver gave up reading our request; 429: it asks us to slow down. Both are about
#: timing, not about the request, so the same bytes may well succeed later.
RETRYABLE_4XX = frozenset({408, 429})
_KEPT_CHARS = 2_000  # of a response body, in the attempt row
_READ_BYTES = 64 * 1024  # read of a response body at most: a receiver cannot flood the worker


class WebhookError(CatalogAIError):
    """A webhook or delivery cannot be added, found or sent as asked."""


# --- the schedule ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off: ``first_s`` after the first try, doubling up to ``max_s``, each wait
    scaled by a random factor in [0.5, 1.5) so that deliveries which failed together (a receiver
    that was down) come back spread out; on average the nominal schedule. Tries stop once the
    nominal schedule would pass ``retry_for_s``: a number of tries, so a redelivery gets a full
    window again and a catalogue whose workers were down for a day does not give up unseen."""

    first_s: float
    max_s: float
    retry_for_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Backoff:
        return cls(
            first_s=settings.webhook_backoff_ms / 1000.0,
            max_s=float(settings.webhook_backoff_max),
            retry_for_s=float(settings.webhook_retry_for),
        )

    def nominal(self, attempt: int) -> float:
        """The wait after try number ``attempt`` (1-based), before jitter."""
        return min(self.max_s, self.first_s * 2.0 ** min(attempt - 1, 60))

    def tries(self) -> int:
        """How many tries a delivery gets in all."""
        total, n = 0.0, 1
        while total + self.nominal(n) <= self.retry_for_s and n < 100_000:
            total += self.nominal(n)
            n += 1
        return n

    def delay(self, attempt: int, rng: random.Random | None = None) -> float | None:
        """Seconds to wait after try ``attempt`` failed; None: that was the last one."""
        if attempt >= self.tries():
            return None
        return self.nominal(attempt) * (0.5 + (rng or random).random())


def retryable(status_code: int | None) -> bool:
    """Whether a try that got ``status_code`` (None: no answer) is worth repeating."""
    return status_code is None or status_code >= 500 or status_code in RETRYABLE_4XX


def lease_for(timeout_s: float) -> float:
    """How long a claim keeps a delivery from other workers: longer than one send can take
    (connect, write and read, each up to ``timeout_s``), so two never send it at once."""
    return 3 * timeout_s + 30.0


# --- claim, send, record --------------------------------------------------------------------------


@dataclass(frozen=True)
class Outgoing:
    """One claimed delivery: everything needed to send it, with no session."""

    delivery_id: int
    attempt: int  # this try's number in the current cycle (1-based)
    webhook_id: int
    url: str
    secret: str
    event_id: str
    type: str
    body: bytes


@dataclass(frozen=True)
class SendResult:
    status_code: int | None  # None: no answer
    duration_ms: float
    response_body: str | None = None
    error: str | None = None
    retry_after_s: float | None = None  # a 429's or 503's Retry-After
    started_at: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class DeliveryOutcome:
    delivery_id: int
    status: DeliveryStatus
    attempts: int
    retry_in: float | None = None  # seconds until the next try (status pending)


def due_filter(now: datetime) -> tuple[Any, ...]:
    """The WHERE conditions of a delivery that may be sent now (the claim's and the sweep's)."""
    return (
        WebhookDelivery.status == DeliveryStatus.PENDING,
        or_(WebhookDelivery.next_attempt_at.is_(None), WebhookDelivery.next_attempt_at <= now),
        WebhookDelivery.webhook_id.in_(select(Webhook.id).where(Webhook.is_active.is_(True))),
    )


def claim_delivery(
    session: Session, delivery_id: int, *, lease_s: float, now: datetime | None = None
) -> Outgoing | None:
    """Take delivery ``delivery_id`` for one try if it is due; None when it is not (delivered,
    failed, not due yet, or being sent by another worker this instant)."""
    now = now or utc_now()
    locked = (
        select(WebhookDelivery.id)
        .where(WebhookDelivery.id == delivery_id, *due_filter(now))
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite serialises writers anyway
        .scalar_subquery()
    )
    claimed = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == locked, *due_filter(now))
        .values(
            attempts=WebhookDelivery.attempts + 1,
            next_attempt_at=now + timedelta(seconds=lease_s),
        )
        .execution_options(synchronize_session=False)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        return None
    row = session.execute(
        select(WebhookDelivery.attempts, Webhook, WebhookEvent)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.id == delivery_id)
    ).one()
    attempts, webhook, event = row
    return Outgoing(
        delivery_id=delivery_id,
        attempt=attempts,
        webhook_id=webhook.id,
        url=webhook.url,
        secret=webhook.secret,
        event_id=event.event_id,
        type=event.type,
        body=body_bytes(event.payload),
    )


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def send(
    out: Outgoing, *, timeout_s: float, client: httpx.Client | None = None, now: float | None = None
) -> SendResult:
    """POST the delivery's body, signed, and report the answer. Never raises for the network."""
    timestamp = int(time.time() if now is None else now)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"catalog-ai-webhooks/{__version__}",
        EVENT_ID_HEADER: out.event_id,
        EVENT_HEADER: out.type,
        DELIVERY_HEADER: str(out.delivery_id),
        ATTEMPT_HEADER: str(out.attempt),
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature_header(out.secret, out.body, timestamp),
    }
    started, started_at = time.perf_counter(), utc_now()
    own = client is None
    http = client or httpx.Client(timeout=timeout_s, follow_redirects=False)
    try:
        with http.stream("POST", out.url, content=out.body, headers=headers) as response:
            data = b""
            for piece in response.iter_bytes():
                data += piece
                # The status is known; a receiver that drips its body must not hold the worker.
                if len(data) >= _READ_BYTES or time.perf_counter() - started > 2 * timeout_s:
                    break
            return SendResult(
                status_code=response.status_code,
                duration_ms=(time.perf_counter() - started) * 1000,
                response_body=data[:_READ_BYTES].decode("utf-8", "replace")[:_KEPT_CHARS],
                retry_after_s=_retry_after(response.headers.get("retry-after")),
                started_at=started_at,
            )
    except httpx.TimeoutException as exc:
        error = f"no answer within {timeout_s:g} s ({type(exc).__name__})"
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}".strip()
    except Exception as exc:
        # Whatever else went wrong (a URL httpx cannot encode, ...) must still be recorded as a
        # failed try: a try that is never recorded would be claimed again for ever.
        error = f"could not send: {type(exc).__name__}: {exc}".strip()
    finally:
        if own:
            http.close()
    took_ms = (time.perf_counter() - started) * 1000
    return SendResult(None, took_ms, error=error[:_KEPT_CHARS], started_at=started_at)


def _refusal(out: Outgoing, result: SendResult) -> str:
    return (
        f"the receiver answered {result.status_code}, which is not retried (only 408, 429 and "
        f"5xx are); fix the receiver or the URL, then: catalog-ai webhooks redeliver "
        f"{out.delivery_id}"
    )


def record_attempt(
    session: Session,
    out: Outgoing,
    result: SendResult,
    *,
    backoff: Backoff,
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> DeliveryOutcome:
    """Write the attempt row and move the delivery on: delivered, failed, or the next try."""
    now = now or utc_now()
    session.add(
        WebhookAttempt(
            delivery_id=out.delivery_id,
            attempted_at=result.started_at or now,
            duration_ms=round(result.duration_ms, 3),
            status_code=result.status_code,
            response_body=result.response_body,
            error=result.error,
        )
    )
    delivery = session.scalar(
        select(WebhookDelivery).where(WebhookDelivery.id == out.delivery_id).with_for_update()
    )
    if delivery is None:  # its webhook was removed meanwhile
        return DeliveryOutcome(out.delivery_id, DeliveryStatus.FAILED, out.attempt)
    # A newer try claimed after this one's lease ran out decides, unless this one delivered.
    superseded = delivery.attempts != out.attempt and not result.ok
    if delivery.status is not DeliveryStatus.PENDING or superseded:
        session.flush()
        return DeliveryOutcome(delivery.id, delivery.status, delivery.attempts)
    delivery.last_status_code = result.status_code
    retry_in = None
    if result.ok:
        delivery.status = DeliveryStatus.DELIVERED
        delivery.delivered_at = now
        delivery.next_attempt_at = None
        delivery.last_error = None
    elif not retryable(result.status_code):
        delivery.status = DeliveryStatus.FAILED
        delivery.next_attempt_at = None
        delivery.last_error = _refusal(out, result)
    else:
        why = result.error or f"the receiver answered {result.status_code}"
        retry_in = backoff.delay(out.attempt, rng)
        if retry_in is None:
            delivery.status = DeliveryStatus.FAILED
            delivery.next_attempt_at = None
            delivery.last_error = (
                f"gave up after {out.attempt} tries over the retry window "
                f"(CATALOG_AI_WEBHOOK_RETRY_FOR={backoff.retry_for_s:g} s); last: {why}; "
                f"once the receiver is back: catalog-ai webhooks redeliver {out.delivery_id}"
            )
        else:
            if result.retry_after_s is not None:
                retry_in = min(max(retry_in, result.retry_after_s), backoff.max_s)
            delivery.next_attempt_at = now + timedelta(seconds=retry_in)
            delivery.last_error = why
    session.flush()
    return DeliveryOutcome(delivery.id, delivery.status, delivery.attempts, retry_in)
