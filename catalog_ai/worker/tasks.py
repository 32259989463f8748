"""The tasks: thin, take ids, idempotent; they open sessions and call services. And the
:class:`CeleryDispatcher` that sends them (services get it from the entry points; the tasks use
it for the work they fan out).

Retries cover transient failures only: the database unreachable, a lock or deadlock
(``sqlalchemy.exc.OperationalError``), a media read that failed with an I/O error
(:class:`~catalog_ai.services.classify.TransientStorageError`); with exponential backoff and
jitter, at most ``MAX_RETRIES`` times. A photo that cannot be decoded is no transient error: its
product ends ``failed`` with the reason. A task that gives up leaves its products ``processing``,
and the sweep enqueues them again later. A broker that cannot be reached when sending is logged,
not raised: the products are committed as ``pending`` and the sweep enqueues them once it is back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import Task
from celery.utils.log import get_task_logger
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy.exc import OperationalError

from catalog_ai.db import unit_of_work
from catalog_ai.services.branch_figures import refresh_branch_figures
from catalog_ai.services.classify import TransientStorageError
from catalog_ai.services.requeue import requeue_stale
from catalog_ai.services.status_counts import fold_status_deltas
from catalog_ai.settings import get_settings
from catalog_ai.worker import pipeline, webhooks
from catalog_ai.worker.app import (
    FIGURES_TASK,
    FOLD_COUNTS_TASK,
    INDEX_TASK,
    RETRAIN_TASK,
    SWEEP_TASK,
    WEBHOOK_SWEEP_TASK,
    app,
    configure,
)

__all__ = [
    "MAX_RETRIES",
    "CeleryDispatcher",
    "classify_products",
    "deliver_webhook",
    "embed_catalog",
    "embed_images",
    "fold_status_counts",
    "reclassify_all",
    "refresh_figures",
    "refresh_index",
    "retrain_if_due",
    "sweep_stale",
    "sweep_webhooks",
]

log = get_task_logger(__name__)

TRANSIENT = (OperationalError, TransientStorageError)
MAX_RETRIES = 6
_RETRY = {
    "autoretry_for": TRANSIENT,
    "retry_backoff": 2,  # 2, 4, 8, ... seconds, with jitter
    "retry_backoff_max": 120,
    "retry_jitter": True,
    "max_retries": MAX_RETRIES,
}


def _dispatcher() -> CeleryDispatcher:
    # Work a task fans out goes back to the broker as more messages.
    return CeleryDispatcher()


@app.task(name="catalog_ai.classify_products", **_RETRY)
def classify_products(product_ids: list[int]) -> dict:
    """Classify these products with the active model (one batched forward pass per chunk)."""
    summary = pipeline.classify_chunk(product_ids, dispatcher=_dispatcher())
    if summary.model_version is not None:
        log.info("classified %s", summary.to_dict())
    return summary.to_dict()


@app.task(name="catalog_ai.reclassify_all", **_RETRY)
def reclassify_all(model_version: str, after_id: int = 0) -> int:
    """One chunk of the re-classification for ``model_version`` (products after ``after_id``),
    then the next link of the chain. Nothing unless that version is still the active one."""
    return pipeline.reclassify(model_version, dispatcher=_dispatcher(), after_id=after_id)


@app.task(name=SWEEP_TASK, **_RETRY)
def sweep_stale(older_than_s: float | None = None) -> int:
    """Enqueue again the products left ``pending``/``processing`` longer than
    ``CATALOG_AI_STALE_AFTER`` seconds (a lost message, a dead worker)."""
    with unit_of_work() as session:
        ids = requeue_stale(
            session,
            older_than_s=older_than_s or get_settings().stale_after,
            dispatcher=_dispatcher(),
        )
    return len(ids)


@app.task(name=FIGURES_TASK, **_RETRY)
def refresh_figures() -> int:
    """Recompute the catalogue tree's figures summary (periodic, beat). Returns its rows."""
    with unit_of_work() as session:
        return refresh_branch_figures(session).rows


@app.task(name=FOLD_COUNTS_TASK, **_RETRY)
def fold_status_counts() -> int:
    """Fold the status-count deltas into their totals (periodic, beat). Returns the rows."""
    with unit_of_work() as session:
        return fold_status_deltas(session)


@app.task(name=RETRAIN_TASK, **_RETRY)
def retrain_if_due() -> str | None:
    """Opt-in (CATALOG_AI_RETRAIN_AFTER_REVIEWS, beat): retrain from the catalog once enough
    reviews arrived, activating the new version only if it is better. Returns its reason."""
    from catalog_ai.jobs.retrain import retrain_if_due as retrain

    decision = retrain(dispatcher=_dispatcher())
    return None if decision is None else f"{decision.candidate}: {decision.reason}"


@app.task(name="catalog_ai.embed_catalog", **_RETRY)
def embed_catalog(model_version: str) -> int:
    """Fan out chunks of the catalog photos that have no embedding for ``model_version`` (the
    labelled catalog is never re-classified, but search and near-duplicates need it). Only while
    that version is the active one; the periodic ``refresh_index`` indexes them."""
    dispatcher = _dispatcher()
    return pipeline.embed_catalogue(model_version, send=dispatcher.embed_images)


@app.task(name="catalog_ai.embed_images", **_RETRY)
def embed_images(model_version: str, image_ids: list[int]) -> int:
    """Embed these photos with the active model, if it is still ``model_version``."""
    return pipeline.embed_images(model_version, image_ids)


@app.task(name=INDEX_TASK, **_RETRY)
def refresh_index(model_version: str | None = None) -> int:
    """Bring the search index of the active model (or ``model_version``) up to date with the
    embeddings in the database. Periodic (beat): each update writes a new index generation, so
    it is batched rather than run per upload."""
    return pipeline.refresh_index(model_version)


@app.task(name="catalog_ai.deliver_webhook", **_RETRY)
def deliver_webhook(delivery_id: int) -> str | None:
    """One try of a webhook delivery (nothing if it is not due: delivered, failed, not yet, or
    another worker has it, so a duplicate message is harmless).

    A failed try schedules the next one itself, with a countdown, when it is due within half
    the visibility timeout; a later one is left to the beat's webhook sweep. Redis hands an
    unacknowledged message to another worker after the visibility timeout, so a countdown of
    an hour would be delivered many times over; the sweep, every CATALOG_AI_SWEEP_INTERVAL
    seconds, is late by at most that interval on a wait of minutes or hours.
    """
    outcome = webhooks.deliver(delivery_id)
    if outcome is None:
        return None
    wait = outcome.retry_in
    # Eager (no broker): a countdown would not wait, so the sweep alone retries.
    if wait is not None and wait <= get_settings().visibility_timeout / 2 and not _eager():
        configure()
        try:
            # A hair after next_attempt_at, so the try finds the delivery due.
            deliver_webhook.apply_async((delivery_id,), countdown=wait + 0.05)
        except (BrokerError, OSError) as exc:
            log.warning(
                "cannot schedule the next try of delivery %d (%s); the sweep will", delivery_id, exc
            )
    return outcome.status.value


def _eager() -> bool:
    return bool(app.conf.task_always_eager)


@app.task(name=WEBHOOK_SWEEP_TASK, **_RETRY)
def sweep_webhooks() -> int:
    """Enqueue every webhook delivery that is due (a lost message, a far-off retry)."""
    ids = webhooks.due()
    _dispatcher().deliver(ids)
    return len(ids)


# --- the dispatcher that sends them ---------------------------------------------------------------


class CeleryDispatcher:
    """Sends each piece of work as a Celery message to the configured broker.

    Through the task objects' ``delay``, never ``send_task`` by name: ``delay`` honours
    ``task_always_eager``, so the dispatcher also works (in-process) with no broker configured.
    """

    def classify(self, product_ids: Sequence[int]) -> None:
        chunk = get_settings().classify_chunk
        ids = list(product_ids)
        for start in range(0, len(ids), chunk):
            _send(classify_products, ids[start : start + chunk], what=f"{len(ids)} products")

    def reclassify(self, version: str, after_id: int = 0) -> None:
        _send(reclassify_all, version, after_id, what=f"re-classification with {version}")

    def embed_catalogue(self, version: str) -> None:
        _send(embed_catalog, version, what=f"catalogue embedding with {version}")

    def embed_images(self, version: str, image_ids: Sequence[int]) -> None:
        _send(embed_images, version, list(image_ids), what=f"{len(image_ids)} photos to embed")

    def deliver(self, delivery_ids: Sequence[int]) -> None:
        for delivery_id in delivery_ids:
            _send(deliver_webhook, delivery_id, what=f"webhook delivery {delivery_id}")


def _send(task: Task, *arguments: Any, what: str) -> None:
    configure()  # the settings may have changed since the last message (tests, the CLI)
    try:
        task.delay(*arguments)
    except (BrokerError, OSError) as exc:
        log.warning(
            "cannot reach the broker to enqueue %s (%s); they stay pending and the sweep "
            "enqueues them again once it is back",
            what,
            exc,
        )
