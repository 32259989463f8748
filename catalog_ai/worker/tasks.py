"""The tasks: thin, take ids, idempotent; they open sessions and call services.

Retries cover transient failures only: the database unreachable, a lock or deadlock
(``sqlalchemy.exc.OperationalError``), a media read that failed with an I/O error
(:class:`~catalog_ai.services.classify.TransientStorageError`); with exponential backoff and
jitter, at most ``MAX_RETRIES`` times. A photo that cannot be decoded is no transient error: its
product ends ``failed`` with the reason. A task that gives up leaves its products ``processing``,
and the sweep enqueues them again later.
"""

from __future__ import annotations

from collections.abc import Sequence

from celery.utils.log import get_task_logger
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from catalog_ai.db import ModelVersion, unit_of_work
from catalog_ai.services.classify import (
    TransientStorageError,
    mark_for_reclassification,
    requeue_stale,
    schedule_classification,
)
from catalog_ai.settings import get_settings
from catalog_ai.worker.app import INDEX_TASK, SWEEP_TASK, app, configure

__all__ = [
    "MAX_RETRIES",
    "classify_products",
    "embed_catalog",
    "embed_images",
    "refresh_index",
    "enqueue_catalog_embedding",
    "reclassify_all",
    "sweep_stale",
    "enqueue_classification",
    "enqueue_reclassification",
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


@app.task(name="catalog_ai.classify_products", **_RETRY)
def classify_products(product_ids: list[int]) -> dict:
    """Classify these products with the active model (one batched forward pass per chunk)."""
    from catalog_ai.worker.pipeline import classify_chunk

    summary = classify_chunk(product_ids)
    if summary.model_version is not None:
        log.info("classified %s", summary.to_dict())
    return summary.to_dict()


@app.task(name="catalog_ai.reclassify_all", **_RETRY)
def reclassify_all(model_version: str) -> int:
    """Fan out chunks for every product ``model_version`` has not classified and no person has
    labelled. Does nothing unless that version is still the active one."""
    with unit_of_work() as session:
        row = session.scalar(select(ModelVersion).where(ModelVersion.version == model_version))
        if row is None or not row.is_active:
            log.info(
                "model %s is not the active model (any more); nothing to re-classify", model_version
            )
            return 0
        ids = mark_for_reclassification(session, model_version_id=row.id)
        schedule_classification(session, ids)
    log.info("model %s: %d products enqueued for classification", model_version, len(ids))
    return len(ids)


@app.task(name=SWEEP_TASK, **_RETRY)
def sweep_stale(older_than_s: float | None = None) -> int:
    """Enqueue again the products left ``pending``/``processing`` longer than
    ``CATALOG_AI_STALE_AFTER`` seconds (a lost message, a dead worker)."""
    with unit_of_work() as session:
        ids = requeue_stale(session, older_than_s=older_than_s or get_settings().stale_after)
    return len(ids)


EMBED_CHUNK = 64


@app.task(name="catalog_ai.embed_catalog", **_RETRY)
def embed_catalog(model_version: str) -> int:
    """Fan out chunks of the catalog photos that have no embedding for ``model_version`` (the
    labelled catalog is never re-classified, but search and near-duplicates need it). Only while
    that version is the active one; the search index is refreshed when the chunks are done
    (in-process) or by the periodic ``refresh_index``."""
    from catalog_ai.services.embed import images_to_embed

    with unit_of_work() as session:
        row = session.scalar(select(ModelVersion).where(ModelVersion.version == model_version))
        if row is None or not row.is_active:
            return 0
        todo = [image_id for image_id, _ in images_to_embed(session, model_version)]
    for start in range(0, len(todo), EMBED_CHUNK):
        _send(embed_images, model_version, todo[start : start + EMBED_CHUNK], what=f"{len(todo)} photos to embed")
    if app.conf.task_always_eager and todo:
        refresh_index.delay(model_version)
    log.info("model %s: %d catalog photos to embed", model_version, len(todo))
    return len(todo)


@app.task(name="catalog_ai.embed_images", **_RETRY)
def embed_images(model_version: str, image_ids: list[int]) -> int:
    """Embed these photos with the active model, if it is still ``model_version`` (idempotent:
    photos already embedded are skipped, a racing twin's rows are ignored)."""
    from catalog_ai.media import MediaStore
    from catalog_ai.services.embed import compute_embeddings, store_embeddings
    from catalog_ai.worker.model_cache import current

    loaded = current()
    if loaded is None or loaded[0].version != model_version:
        return 0
    with unit_of_work() as session:
        wanted = set(image_ids)
        from catalog_ai.services.embed import images_to_embed

        rows = [r for r in images_to_embed(session, model_version) if r[0] in wanted]
    vectors = compute_embeddings(loaded[1], MediaStore(get_settings().media_dir), rows)
    with unit_of_work() as session:
        return store_embeddings(session, model_version, vectors)


@app.task(name=INDEX_TASK, **_RETRY)
def refresh_index(model_version: str | None = None) -> int:
    """Bring the search index of the active model (or ``model_version``) up to date with the
    embeddings in the database. Periodic (beat) and after catalog embedding: each update writes
    a new index generation, so it is batched rather than run per upload."""
    from catalog_ai.services.embed import embedding_progress
    from catalog_ai.services.models import active_model
    from catalog_ai.services.search import update_index

    with unit_of_work() as session:
        if model_version is None:
            row = active_model(session)
            if row is None:
                return 0
            model_version = row.version
        if embedding_progress(session, model_version).embedded == 0:
            return 0  # nothing to index yet (no photo could be embedded)
        status = update_index(session, model_version)
    return status.n_indexed


def enqueue_catalog_embedding(model_version: str) -> None:
    configure()
    _send(embed_catalog, model_version, what=f"catalog embedding with {model_version}")


def enqueue_classification(product_ids: Sequence[int]) -> None:
    """Send ``classify_products`` messages of ``CATALOG_AI_CLASSIFY_CHUNK`` ids each (with no
    broker: run them now, in this process).

    A broker that cannot be reached is logged, not raised: the products are committed as
    ``pending`` and the sweep enqueues them once the broker is back.
    """
    configure()
    chunk = get_settings().classify_chunk
    ids = list(product_ids)
    for start in range(0, len(ids), chunk):
        _send(classify_products, ids[start : start + chunk], what=f"{len(ids)} products")


def enqueue_reclassification(model_version: str) -> None:
    configure()
    _send(reclassify_all, model_version, what=f"re-classification with {model_version}")


def _send(task, *arguments, what: str) -> None:
    if app.conf.task_always_eager:
        task.delay(*arguments)
        return
    from kombu.exceptions import OperationalError as BrokerError

    try:
        task.delay(*arguments)
    except (BrokerError, OSError) as exc:
        log.warning(
            "cannot reach the broker to enqueue %s (%s); they stay pending and the sweep "
            "enqueues them again once it is back",
            what,
            exc,
        )
