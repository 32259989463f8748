"""What a webhook task does, callable without Celery: send one delivery, find the due ones.

One delivery is claimed, sent and recorded in two short transactions with the network between
them (:mod:`catalog_ai.services.webhook_delivery`), so a slow receiver never holds a row lock.
The Celery task (:func:`catalog_ai.worker.tasks.deliver_webhook`) and the in-process runner
(:class:`catalog_ai.worker.dispatch.InProcessDispatcher`) both call :func:`deliver`, and both
schedule the next try from its outcome; the periodic sweep (:func:`due`) covers every hint that
was lost: a message, a process that ended, a timer that never fired.
"""

from __future__ import annotations

import logging

from catalog_ai.db import unit_of_work
from catalog_ai.services.webhook_delivery import (
    Backoff,
    DeliveryOutcome,
    claim_delivery,
    lease_for,
    record_attempt,
    send,
)
from catalog_ai.services.webhooks import due_deliveries
from catalog_ai.settings import get_settings

__all__ = ["deliver", "due"]

log = logging.getLogger(__name__)


def deliver(delivery_id: int, *, url: str | None = None) -> DeliveryOutcome | None:
    """One try of delivery ``delivery_id`` if it is due (None: it is not, or another worker has
    it), in the catalogue at database ``url`` (default: the configured one)."""
    settings = get_settings()
    with unit_of_work(url) as session:
        out = claim_delivery(session, delivery_id, lease_s=lease_for(settings.webhook_timeout))
    if out is None:
        return None
    result = send(out, timeout_s=settings.webhook_timeout)
    with unit_of_work(url) as session:
        outcome = record_attempt(session, out, result, backoff=Backoff.from_settings(settings))
    if result.ok:
        log.info("webhook delivery %d (%s) delivered to %s", delivery_id, out.type, out.url)
    else:
        log.warning(
            "webhook delivery %d (%s) to %s, try %d: %s; %s",
            delivery_id,
            out.type,
            out.url,
            out.attempt,
            result.error or f"answered {result.status_code}",
            f"next try in {outcome.retry_in:.1f} s"
            if outcome.retry_in is not None
            else f"now {outcome.status.value}",
        )
    return outcome


def due(*, url: str | None = None, limit: int = 500) -> list[int]:
    """The deliveries due now (oldest first), for a sweep to hand to a dispatcher."""
    with unit_of_work(url) as session:
        return due_deliveries(session, limit=limit)
