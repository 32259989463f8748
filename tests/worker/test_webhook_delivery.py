"""Webhooks end to end against a real receiver on loopback and the real PostgreSQL: through the
in-process runner (with the real classification pipeline emitting the events), across a
"restart" of that runner, and through a real Celery worker on Redis (database 11).

The receiver refuses for a while (connection refused, then 503), then accepts; every event must
arrive, each signature must verify, and a request the receiver took but answered too late is
sent again: a duplicate a receiver recognises by its event id.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from sqlalchemy import func, select
from webhook_receiver import Receiver

from catalog_ai.db import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEvent,
    migrate,
    unit_of_work,
)
from catalog_ai.photos.store import MediaStore
from catalog_ai.services.ingest import ingest_files
from catalog_ai.services.webhook_signing import verify_signature
from catalog_ai.services.webhooks import add_webhook, emit
from catalog_ai.settings import get_settings, reset_settings
from catalog_ai.worker.dispatch import InProcessDispatcher
from worker.support import activate, shared_model

pytestmark = [pytest.mark.integration]

# Small back-off so the tests take seconds: 100 ms doubling up to 1 s, a 1 s timeout.
FAST = {
    "CATALOG_AI_WEBHOOK_BACKOFF_MS": "100",
    "CATALOG_AI_WEBHOOK_BACKOFF_MAX": "1",
    "CATALOG_AI_WEBHOOK_TIMEOUT": "1",
    "CATALOG_AI_WEBHOOK_RETRY_FOR": "120",
}


def _wait(condition: Callable[[], bool], timeout: float, what: str, extra=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{extra()}")
        time.sleep(0.05)


@pytest.fixture
def pg_env(catalog_home, postgres_url, monkeypatch) -> dict[str, str]:
    env = {"CATALOG_AI_DATABASE_URL": postgres_url, "CATALOG_AI_TORCH_THREADS": "1", **FAST}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    migrate.upgrade()
    return env


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for r in made:
        r.close()


def _subscribe(url: str, events: str) -> str:
    with unit_of_work() as session:
        return add_webhook(session, url, events).secret or ""


def _event_ids() -> set[str]:
    with unit_of_work() as session:
        return set(session.scalars(select(WebhookEvent.event_id)))


def _statuses() -> dict[DeliveryStatus, int]:
    with unit_of_work() as session:
        return dict(
            session.execute(
                select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
            ).all()
        )


def _attempts() -> int:
    with unit_of_work() as session:
        return session.scalar(select(func.count()).select_from(WebhookAttempt)) or 0


def _all_delivered() -> bool:
    statuses = _statuses()
    return bool(statuses) and set(statuses) == {DeliveryStatus.DELIVERED}


def _check_arrivals(receiver: Receiver, secret: str) -> None:
    seen = receiver.seen()
    assert all(verify_signature(secret, r.headers, r.body) for r in seen)
    assert all(r.event["event_id"] == r.event_id for r in seen)
    arrived = {r.event_id for r in receiver.accepted()}
    assert arrived == _event_ids()  # every event, deduplicated by its id


def test_in_process_runner_delivers_every_classification_event_through_an_outage(
    pg_env, tmp_path_factory, receivers
):
    photos, bundle = shared_model(tmp_path_factory)
    activate(bundle.path)
    # Down (refused) first; once up: two 503s, then the first accepted request is answered
    # after the sender's 1 s timeout: taken by the receiver, so its retry is a duplicate.
    receiver = Receiver(
        lambda n: 503 if n <= 2 else 200, hold_s=lambda n: 1.5 if n == 3 else 0.0, up=False
    )
    receivers.append(receiver)
    secret = _subscribe(receiver.url, "suggestion.created,product.accepted,product.failed")
    runner = InProcessDispatcher(name="webhook-test-runner")
    try:
        with unit_of_work() as session:
            media = MediaStore(get_settings().media_dir)
            ingest_files(session, photos[:6], media=media, dispatcher=runner)
        _wait(lambda: _attempts() >= 3, 30, "refused tries to be recorded")
        assert receiver.seen() == []
        receiver.start()
        _wait(_all_delivered, 60, "every delivery to be delivered", lambda: str(_statuses()))
        assert runner.drain(timeout=30)
    finally:
        runner.cancel_retries()
        runner.drain(timeout=30)
    _check_arrivals(receiver, secret)
    events = _event_ids()
    kinds = {r.headers["X-CatalogAI-Event"] for r in receiver.accepted()}
    assert "suggestion.created" in kinds and len(events) >= 6  # one per product at least
    accepted_ids = [r.event_id for r in receiver.accepted()]
    duplicates = {e for e in accepted_ids if accepted_ids.count(e) > 1}
    assert len(duplicates) == 1  # the request answered too late, sent again
    with unit_of_work() as session:
        tries = session.scalars(select(WebhookAttempt).order_by(WebhookAttempt.id)).all()
    assert sum(t.status_code is None for t in tries) >= 3 + 1  # refused, and the timed-out one
    assert [t.status_code for t in tries].count(503) == 2


def test_after_a_restart_the_next_process_sweeps_what_was_left_due(pg_env, receivers):
    receiver = Receiver(up=False)
    receivers.append(receiver)
    secret = _subscribe(receiver.url, "model.activated")
    first = InProcessDispatcher(name="first-process")
    with unit_of_work() as session:
        emit(session, "model.activated", {"version": "v1"}, dispatcher=first)
    _wait(lambda: _attempts() >= 1, 20, "the first try")
    first.drain(timeout=10)
    first.cancel_retries()  # the process ended before its retry
    assert _statuses() == {DeliveryStatus.PENDING: 1}
    receiver.start()
    second = InProcessDispatcher(name="next-process")
    second.start_sweeping(0.2)
    try:
        _wait(_all_delivered, 20, "the sweep of the next process to deliver")
    finally:
        second.stop_sweeping()
        second.drain(timeout=10)
        second.cancel_retries()
    _check_arrivals(receiver, secret)
    assert len(receiver.accepted()) == 1


# --- a real Celery worker -----------------------------------------------------------------------


@pytest.fixture
def broker(redis_url, pg_env, monkeypatch) -> str:
    url = redis_url.rsplit("/", 1)[0] + "/11"  # this suite's own Redis database
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    monkeypatch.setenv("CATALOG_AI_BROKER_URL", url)
    reset_settings()
    return url


@pytest.mark.slow
def test_a_celery_worker_delivers_through_refusals_and_its_beat_sends_lost_hints(
    broker, pg_env, tmp_path, receivers
):
    from catalog_ai.worker.tasks import CeleryDispatcher

    receiver = Receiver(lambda n: 503 if n <= 3 else 200)
    receivers.append(receiver)
    secret = _subscribe(receiver.url, "product.accepted,product.failed")
    env = {
        **os.environ,
        **pg_env,
        "CATALOG_AI_BROKER_URL": broker,
        "CATALOG_AI_HOME": str(get_settings().home),
        "CATALOG_AI_OFFLINE": "1",
        "CATALOG_AI_SWEEP_INTERVAL": "1",
    }
    log = tmp_path / "worker.log"
    with log.open("ab") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "catalog_ai", "worker", "--concurrency", "1", "--beat"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def logs() -> str:
        return log.read_text(errors="replace")[-4000:]

    try:
        _wait(lambda: b" ready." in log.read_bytes(), 90, "the worker to start", logs)
        with unit_of_work() as session:
            for i in range(5):
                data = {"product_id": i, "external_id": f"sku-{i}", "error": "no photo"}
                emit(session, "product.failed", data, dispatcher=CeleryDispatcher())
            # Committed with no hint at all (as if the message was lost): the beat's sweep.
            for i in range(2):
                emit(session, "product.accepted", {"product_id": 10 + i}, dispatcher=None)
        _wait(
            _all_delivered, 60, "every delivery to be delivered", lambda: logs() + str(_statuses())
        )
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)
    _check_arrivals(receiver, secret)
    assert len(_event_ids()) == 7
    assert [r.answered for r in receiver.seen()].count(503) == 3
    # Each request the receiver saw is one attempt row: the claim let no delivery go out twice.
    assert _attempts() == len(receiver.seen())
