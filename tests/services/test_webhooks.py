"""Webhooks as services: signing and verification, the back-off schedule, subscriptions, the
outbox (an event exists exactly when its transaction committed), and one try's outcome against a
real receiver on loopback, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import random
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from webhook_receiver import Receiver, Recorder

from catalog_ai.db import (
    DeliveryStatus,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEvent,
    unit_of_work,
    utc_now,
)
from catalog_ai.services.webhook_delivery import (
    Backoff,
    SendResult,
    claim_delivery,
    lease_for,
    record_attempt,
    retryable,
    send,
)
from catalog_ai.services.webhook_signing import (
    SIGNATURE_HEADER,
    body_bytes,
    sign,
    signature_header,
    signature_problem,
    verify_signature,
)
from catalog_ai.services.webhooks import (
    EVENT_TYPES,
    WebhookError,
    add_webhook,
    deliveries,
    due_deliveries,
    emit,
    list_webhooks,
    redeliver,
    remove_webhook,
)

SECRET = "whsec_test-secret"


# --- signing --------------------------------------------------------------------------------------


def _signed(body: bytes, t: int, secret: str = SECRET) -> dict[str, str]:
    return {SIGNATURE_HEADER: signature_header(secret, body, t)}


def test_a_signature_verifies_and_matches_a_plain_hmac():
    import hashlib
    import hmac

    body, now = body_bytes({"b": 1, "a": "é"}), 1_800_000_000
    expected = hmac.new(SECRET.encode(), f"{now}.".encode() + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, body, now) == expected
    headers = _signed(body, now)
    assert headers[SIGNATURE_HEADER] == f"t={now},v1={expected}"
    assert verify_signature(SECRET, headers, body, now=now + 10)
    # Header names in any case (frameworks lower-case them), the body as text too.
    lowered = {k.lower(): v for k, v in headers.items()}
    assert verify_signature(SECRET, lowered, body.decode(), now=now)


def test_tampering_another_secret_and_stale_or_future_timestamps_are_refused():
    body, now = body_bytes({"event_id": "evt_1", "data": {"path": "Fruit"}}), 1_800_000_000
    headers = _signed(body, now)
    assert "does not match" in signature_problem(
        SECRET, headers, body.replace(b"Fruit", b"Veg"), now=now
    )
    assert not verify_signature("whsec_other", headers, body, now=now)
    assert "off" in signature_problem(SECRET, headers, body, 300, now=now + 301)
    assert not verify_signature(SECRET, headers, body, 300, now=now - 301)
    assert verify_signature(SECRET, headers, body, 300, now=now + 299)
    # A replay with a fresh timestamp but the old signature does not match.
    replay = {SIGNATURE_HEADER: headers[SIGNATURE_HEADER].replace(f"t={now}", f"t={now + 400}")}
    assert not verify_signature(SECRET, replay, body, now=now + 400)
    assert "no X-CatalogAI-Signature" in signature_problem(SECRET, {}, body, now=now)
    assert "not of the form" in signature_problem(SECRET, {SIGNATURE_HEADER: "v1=ab"}, body)


def test_any_of_several_v1_signatures_may_match():
    body, now = b"{}", 1_800_000_000
    header = f"t={now},v1={sign('whsec_old', body, now)},v1={sign(SECRET, body, now)}"
    assert verify_signature(SECRET, {SIGNATURE_HEADER: header}, body, now=now)


# --- the schedule ---------------------------------------------------------------------------------


def test_backoff_doubles_up_to_its_cap_and_the_tries_fill_the_window():
    b = Backoff(first_s=10, max_s=3600, retry_for_s=86_400)
    waits = [b.nominal(n) for n in range(1, b.tries())]
    assert waits[:4] == [10, 20, 40, 80]
    assert max(waits) == 3600 and waits == sorted(waits)
    # The nominal schedule of all the waits fits the window; one more would not.
    assert sum(waits) <= 86_400 < sum(waits) + b.nominal(b.tries())


def test_jitter_spreads_each_wait_around_its_nominal_value_and_the_last_try_gives_up():
    b = Backoff(first_s=1, max_s=8, retry_for_s=30)
    rng = random.Random(7)
    for attempt in range(1, b.tries()):
        samples = [b.delay(attempt, rng) for _ in range(200)]
        assert all(0.5 * b.nominal(attempt) <= s < 1.5 * b.nominal(attempt) for s in samples)
        assert max(samples) - min(samples) > 0.5 * b.nominal(attempt)  # really spread
    assert b.delay(b.tries(), rng) is None


def test_which_answers_are_retried():
    assert retryable(None) and retryable(500) and retryable(503) and retryable(408)
    assert retryable(429)
    assert not any(retryable(code) for code in (301, 302, 400, 401, 403, 404, 410, 422))


# --- subscriptions --------------------------------------------------------------------------------


def test_urls_and_events_are_checked_and_the_secret_is_shown_once(any_catalog):
    with unit_of_work() as session:
        for bad in ("ftp://shop/hook", "shop.example.com/hook", "https://", "http://a b/c"):
            with pytest.raises(WebhookError, match=r"URL|white space"):
                add_webhook(session, bad, "product.accepted")
        with pytest.raises(WebhookError, match=r"unknown event type 'product\.deleted'"):
            add_webhook(session, "https://shop.example.com/h", "product.accepted,product.deleted")
        with pytest.raises(WebhookError, match="at least one"):
            add_webhook(session, "https://shop.example.com/h", " , ")
        info = add_webhook(
            session, "https://shop.example.com/h", "product.failed,suggestion.created"
        )
    assert info.events == ["suggestion.created", "product.failed"]  # the documented order
    assert info.secret and info.secret.startswith("whsec_") and len(info.secret) > 40
    with unit_of_work() as session:
        (listed,) = list_webhooks(session)
        assert listed.id == info.id and listed.secret is None
        remove_webhook(session, info.id)
        assert list_webhooks(session) == []
        with pytest.raises(WebhookError, match="does not exist"):
            remove_webhook(session, info.id)


# --- the outbox -----------------------------------------------------------------------------------


def _count(model) -> int:
    with unit_of_work() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_an_event_is_written_with_its_transaction_and_handed_over_only_after_the_commit(
    any_catalog,
):
    with unit_of_work() as session:
        wanted = add_webhook(session, "https://a.example/h", "product.failed").id
        add_webhook(session, "https://b.example/h", "model.activated")
        inactive = add_webhook(session, "https://c.example/h", "product.failed").id
    with unit_of_work() as session:
        session.get(Webhook, inactive).is_active = False
    recorder = Recorder()
    with pytest.raises(RuntimeError), unit_of_work() as session:
        assert emit(session, "product.failed", {"product_id": 1}, dispatcher=recorder)
        raise RuntimeError("the caller's work failed")
    assert _count(WebhookEvent) == 0 and _count(WebhookDelivery) == 0
    assert recorder.delivered == []

    with unit_of_work() as session:
        event_id = emit(session, "product.failed", {"product_id": 1}, dispatcher=recorder)
        assert recorder.delivered == []  # not before the commit
    (ids,) = recorder.delivered
    with unit_of_work() as session:
        (log,) = deliveries(session)
        event = session.scalar(select(WebhookEvent))
    assert ids == [log.id] and log.webhook_id == wanted and log.status is DeliveryStatus.PENDING
    assert event.event_id == event_id and event_id.startswith("evt_")
    assert event.payload["event_id"] == event_id and event.payload["type"] == "product.failed"
    assert event.payload["data"] == {"product_id": 1} and event.payload["created_at"]
    # Nobody subscribes to suggestion.created: nothing is written, nothing handed over.
    with unit_of_work() as session:
        assert emit(session, "suggestion.created", {"x": 1}, dispatcher=recorder) is None
        with pytest.raises(WebhookError, match="unknown event type"):
            emit(session, "product.deleted", {}, dispatcher=recorder)
    assert _count(WebhookEvent) == 1 and len(recorder.delivered) == 1
    assert set(EVENT_TYPES) == {
        "suggestion.created",
        "product.accepted",
        "product.failed",
        "model.activated",
    }


# --- one try against a real receiver --------------------------------------------------------------


@pytest.fixture
def receiver_factory():
    made: list[Receiver] = []

    def make(*args, **kwargs) -> Receiver:
        made.append(Receiver(*args, **kwargs))
        return made[-1]

    yield make
    for r in made:
        r.close()


def _delivery_to(url: str, events: str = "product.failed") -> int:
    with unit_of_work() as session:
        add_webhook(session, url, events)
    with unit_of_work() as session:
        emit(session, "product.failed", {"product_id": 7, "error": "no photo"}, dispatcher=None)
        return session.scalar(select(WebhookDelivery.id))


def _try(delivery_id: int, backoff: Backoff, *, timeout_s: float = 2.0):
    with unit_of_work() as session:
        out = claim_delivery(session, delivery_id, lease_s=lease_for(timeout_s))
    assert out is not None
    result = send(out, timeout_s=timeout_s)
    with unit_of_work() as session:
        return out, result, record_attempt(session, out, result, backoff=backoff)


FAST = Backoff(first_s=0.05, max_s=0.2, retry_for_s=1.0)


def test_a_delivered_try_is_signed_over_the_exact_body(any_catalog, receiver_factory):
    receiver = receiver_factory()
    delivery_id = _delivery_to(receiver.url)
    with unit_of_work() as session:
        secret = session.scalar(select(Webhook.secret))
    out, result, outcome = _try(delivery_id, FAST)
    assert result.ok and outcome.status is DeliveryStatus.DELIVERED and outcome.retry_in is None
    (request,) = receiver.seen()
    assert request.body == out.body and verify_signature(secret, request.headers, request.body)
    assert request.headers["X-CatalogAI-Event"] == "product.failed"
    assert request.event["event_id"] == request.event_id == out.event_id
    assert request.headers["X-CatalogAI-Attempt"] == "1"
    with unit_of_work() as session:
        d = session.get(WebhookDelivery, delivery_id)
        (attempt,) = session.scalars(select(WebhookAttempt))
    assert d.status is DeliveryStatus.DELIVERED and d.delivered_at and d.last_status_code == 200
    assert attempt.status_code == 200 and attempt.response_body == '{"ok": true}'
    # Delivered: no further claim.
    with unit_of_work() as session:
        assert claim_delivery(session, delivery_id, lease_s=10) is None


@pytest.mark.parametrize("status", [400, 404, 410, 301])
def test_a_refusal_fails_at_once_and_is_not_followed_or_retried(
    any_catalog, receiver_factory, status
):
    receiver = receiver_factory(lambda n: status)
    delivery_id = _delivery_to(receiver.url)
    _, result, outcome = _try(delivery_id, FAST)
    assert result.status_code == status and outcome.status is DeliveryStatus.FAILED
    assert len(receiver.seen()) == 1  # a redirect was not followed
    with unit_of_work() as session:
        d = session.get(WebhookDelivery, delivery_id)
        assert f"answered {status}" in d.last_error and f"redeliver {delivery_id}" in d.last_error
        assert due_deliveries(session) == []


@pytest.mark.parametrize("status", [503, 500, 408, 429])
def test_a_transient_answer_is_tried_again_after_the_back_off(
    any_catalog, receiver_factory, status
):
    receiver = receiver_factory(lambda n: status)
    delivery_id = _delivery_to(receiver.url)
    before = utc_now()
    _, _, outcome = _try(delivery_id, Backoff(first_s=30, max_s=60, retry_for_s=600))
    assert outcome.status is DeliveryStatus.PENDING and 15 <= outcome.retry_in < 45
    with unit_of_work() as session:
        d = session.get(WebhookDelivery, delivery_id)
        assert d.next_attempt_at >= before + timedelta(seconds=15)
        assert due_deliveries(session) == []  # not yet
        assert due_deliveries(session, now=d.next_attempt_at) == [delivery_id]


def test_retry_after_of_a_429_is_honoured(any_catalog, receiver_factory):
    receiver = receiver_factory(lambda n: 429, headers={"Retry-After": "40"})
    delivery_id = _delivery_to(receiver.url)
    _, result, outcome = _try(delivery_id, Backoff(first_s=1, max_s=60, retry_for_s=600))
    assert result.retry_after_s == 40 and outcome.retry_in == 40


def test_no_answer_is_retried_until_the_window_ends_then_failed(any_catalog, receiver_factory):
    receiver = receiver_factory(up=False)  # connection refused
    delivery_id = _delivery_to(receiver.url)
    outcomes = []
    for _ in range(FAST.tries()):
        with unit_of_work() as session:
            d = session.get(WebhookDelivery, delivery_id)
            now = max(utc_now(), d.next_attempt_at)
            out = claim_delivery(session, delivery_id, lease_s=5, now=now)
        result = send(out, timeout_s=2)
        assert result.status_code is None and result.error
        with unit_of_work() as session:
            outcomes.append(record_attempt(session, out, result, backoff=FAST, now=now))
    assert [o.status for o in outcomes[:-1]] == [DeliveryStatus.PENDING] * (FAST.tries() - 1)
    assert outcomes[-1].status is DeliveryStatus.FAILED
    with unit_of_work() as session:
        (log,) = deliveries(session, status="failed")
    assert len(log.tries) == FAST.tries() and "gave up after" in log.last_error
    assert all(t.status_code is None and t.error for t in log.tries)

    # Redelivery: a new cycle, the same event; the receiver is up now.
    receiver.start()
    recorder = Recorder()
    with unit_of_work() as session:
        redeliver(session, delivery_id, dispatcher=recorder)
    assert recorder.delivered == [[delivery_id]]
    _, _, outcome = _try(delivery_id, FAST)
    assert outcome.status is DeliveryStatus.DELIVERED and outcome.attempts == 1
    with unit_of_work() as session:
        (log,) = deliveries(session, delivery_id=delivery_id)
    assert len(log.tries) == FAST.tries() + 1
    with unit_of_work() as session, pytest.raises(WebhookError, match="does not exist"):
        redeliver(session, 999_999, dispatcher=None)


def test_a_claim_is_a_lease_other_workers_cannot_take(any_catalog):
    delivery_id = _delivery_to("http://127.0.0.1:9/never-sent")
    now = utc_now()
    with unit_of_work() as session:
        first = claim_delivery(session, delivery_id, lease_s=60, now=now)
    with unit_of_work() as session:
        later = now + timedelta(seconds=59)
        assert claim_delivery(session, delivery_id, lease_s=60, now=later) is None
    # The first sender died without recording: after the lease, another may try.
    with unit_of_work() as session:
        again = claim_delivery(session, delivery_id, lease_s=60, now=now + timedelta(seconds=61))
    assert first.attempt == 1 and again.attempt == 2
    # The late first sender's failure does not override the newer claim's schedule.
    with unit_of_work() as session:
        outcome = record_attempt(session, first, SendResult(None, 1.0, error="x"), backoff=FAST)
    assert outcome.status is DeliveryStatus.PENDING and outcome.attempts == 2


@pytest.mark.integration
def test_concurrent_claims_on_postgresql_give_the_delivery_to_one_worker(
    catalog_home, postgres_url, monkeypatch
):
    from catalog_ai.db import migrate
    from catalog_ai.settings import reset_settings

    monkeypatch.setenv("CATALOG_AI_DATABASE_URL", postgres_url)
    reset_settings()
    migrate.upgrade()
    _delivery_to("http://127.0.0.1:9/never-sent")
    with unit_of_work() as session:
        for _ in range(19):
            emit(session, "product.failed", {"product_id": 1}, dispatcher=None)
        delivery_ids = list(session.scalars(select(WebhookDelivery.id)))
    claims: list[int] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for delivery_id in delivery_ids:
            with unit_of_work() as session:
                out = claim_delivery(session, delivery_id, lease_s=60)
            if out is not None:
                claims.append(out.delivery_id)
            time.sleep(0)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(claims) == sorted(delivery_ids)  # each exactly once


def test_the_documented_receiver_check_accepts_our_signature_and_refuses_a_changed_body():
    """The 5-line check in webhook_signing's docstring (the README's) run as written."""
    import textwrap

    from catalog_ai.services import webhook_signing

    doc = webhook_signing.__doc__ or ""
    code = textwrap.dedent(doc.split("in 5 lines::", 1)[1].split("\n\n", 2)[1])
    namespace: dict = {}
    exec(code, namespace)  # our own docstring
    verify = namespace["verify"]
    body, now = body_bytes({"event_id": "evt_1", "type": "product.accepted"}), int(time.time())
    headers = {SIGNATURE_HEADER: signature_header(SECRET, body, now)}
    assert verify(SECRET, headers, body)
    assert not verify(SECRET, headers, body + b" ")
    assert not verify("whsec_other", headers, body)
    stale = {SIGNATURE_HEADER: signature_header(SECRET, body, now - 600)}
    assert not verify(SECRET, stale, body)
