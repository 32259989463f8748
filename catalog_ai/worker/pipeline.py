"""What each background task does, as plain functions: classify a chunk, re-classify for a new
model, embed the catalogue, refresh the search index.

Kept apart from Celery so the embedded set-up's in-process runner, the benchmark and the tests
call exactly the code a worker runs. A classification chunk uses short transactions and none
while the network runs: claim, (network), record, then the near-duplicate check on what was
committed. Work that fans out (re-classification, catalogue embedding) hands its pieces to the
``dispatcher`` it is given, so a Celery worker sends messages and the in-process runner queues
them behind the current job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from catalog_ai.db import ModelVersion, Product, ProductStatus, unit_of_work
from catalog_ai.db.queries import find_model_version
from catalog_ai.dispatch import Dispatcher, after_commit
from catalog_ai.model.bundle import BundleError
from catalog_ai.photos.store import MediaStore
from catalog_ai.services import reclassify as reclassify_chunks
from catalog_ai.services.classify import claim, record, run_model, unfinished_before
from catalog_ai.services.near_duplicates import flag_near_duplicates
from catalog_ai.services.webhook_payloads import emit_classified
from catalog_ai.settings import get_settings
from catalog_ai.worker import model_cache

__all__ = [
    "EMBED_CHUNK",
    "ChunkSummary",
    "classify_chunk",
    "embed_catalogue",
    "embed_images",
    "reclassify",
    "refresh_index",
]

#: Catalogue photos per embedding task.
EMBED_CHUNK = 64

log = logging.getLogger(__name__)

_NO_MODEL_WARNING_EVERY_S = 60.0
_last_no_model_warning = -_NO_MODEL_WARNING_EVERY_S


@dataclass
class ChunkSummary:
    model_version: str | None = None  # None: no active model, nothing was done
    claimed: int = 0
    suggested: int = 0
    accepted: int = 0
    failed: int = 0
    skipped: int = 0
    near_duplicates: int = 0
    seconds: float = 0.0  # the whole call
    model_seconds: float = 0.0  # of which decoding, the forward pass and decisions

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "seconds": round(self.seconds, 3),
            "model_seconds": round(self.model_seconds, 3),
        }


def classify_chunk(
    product_ids: Sequence[int],
    *,
    media: MediaStore | None = None,
    dispatcher: Dispatcher | None = None,
) -> ChunkSummary:
    """Classify ``product_ids`` with the active model, ``CATALOG_AI_CLASSIFY_CHUNK`` at a time.

    With no active model the products stay ``pending`` (activating a model enqueues them).
    Webhook events of each recorded group go to ``dispatcher`` after its commit (None: the
    sweep sends them).

    Products whose earlier claim never finished (their worker died on the chunk, e.g. killed
    for memory by one hostile photo) are classified one at a time, each claimed and recorded
    alone, after the rest of the chunk: the photo that kills the worker then only counts
    attempts against itself, and its former chunk-mates finish at their next try.
    """
    global _last_no_model_warning
    started = time.perf_counter()
    settings = get_settings()
    media = media or MediaStore(settings.media_dir)
    summary = ChunkSummary()
    ids = list(product_ids)
    for start in range(0, len(ids), settings.classify_chunk):
        # Asked again per chunk (one cheap query): a version activated, or a review recorded,
        # while a long batch runs is used from the next chunk on.
        try:
            loaded = model_cache.current()
        except BundleError as exc:
            # Nothing claimed: the products stay pending (no attempt counted against them) and
            # the sweep offers them again once the bundle is fixed or another model activated.
            log.error("%s", exc)
            break
        if loaded is None:
            # Once a minute, not once per chunk: a big upload would repeat it hundreds of times.
            if time.monotonic() - _last_no_model_warning >= _NO_MODEL_WARNING_EVERY_S:
                _last_no_model_warning = time.monotonic()
                log.warning(
                    "no active model: uploads stay pending until one is activated "
                    "(catalog-ai models activate VERSION)"
                )
            break
        model, predictor = loaded
        summary.model_version = model.version
        chunk = ids[start : start + settings.classify_chunk]
        with unit_of_work() as session:
            suspects = unfinished_before(session, chunk)
        groups = [[i for i in chunk if i not in suspects]] + [[i] for i in chunk if i in suspects]
        for group in groups:
            if group:
                _classify_group(group, model, predictor, media, settings, summary, dispatcher)
    summary.seconds = time.perf_counter() - started
    return summary


def _flag_committed(candidates, model_version_id: int) -> int:
    """The near-duplicate check on suggestions already committed, in a transaction of its own.

    A failure here is logged, not raised: the suggestions stand, and a retried task would find
    the chunk classified already and could not redo the check anyway.
    """
    if not candidates:
        return 0
    try:
        with unit_of_work() as session:
            return len(flag_near_duplicates(session, candidates, model_version_id=model_version_id))
    except Exception:
        log.exception(
            "near-duplicate check failed for products %s; their suggestions are kept",
            [pid for pid, _ in candidates],
        )
        return 0


def _active_version(session, version: str) -> ModelVersion | None:
    row = find_model_version(session, version)
    return row if row is not None and row.is_active else None


def reclassify(
    version: str,
    *,
    dispatcher: Dispatcher,
    after_id: int = 0,
    chunk: int | None = None,
) -> int:
    """One link of the re-classification for ``version``: mark the next ``chunk`` products
    after ``after_id`` that it has not classified and no person has labelled
    (:func:`catalog_ai.services.reclassify.next_chunk`; ``chunk`` None:
    :data:`~catalog_ai.services.reclassify.RECLASSIFY_CHUNK`), commit, and hand them to
    ``dispatcher``, then the next link. Does nothing unless ``version`` is still the active one.
    Returns how many products this link handed over.

    The next link is enqueued after the chunk's own classification messages, so it runs when the
    workers reach the end of the chunk: the products marked ahead of the workers stay about one
    chunk (the sweep never finds a million of them waiting, a new upload waits behind one chunk,
    not behind the catalogue), and each link is a short transaction. A worker killed in a link
    gets its message back and the link runs again from the same cursor. Nothing is ever
    classified twice by one version (the rule is checked again for every chunk, the claim and
    the unique key do the rest), but a second chain (activating the active version again while
    one runs, or a worker killed between sending the next link and acknowledging its own) sends
    each later chunk twice: wasted claims, not wrong results. A next link that could not be sent
    (broker down) stops the chain; ``model_progress`` then shows products not yet queued, and
    activating the version again resumes (what this version did is skipped).
    """
    started = time.perf_counter()
    with unit_of_work() as session:
        row = _active_version(session, version)
        if row is None:
            log.info("model %s is not the active model (any more); nothing to re-classify", version)
            return 0
        part = reclassify_chunks.next_chunk(
            session,
            model_version_id=row.id,
            after_id=after_id,
            size=chunk or reclassify_chunks.RECLASSIFY_CHUNK,  # looked up now: tests change it
        )
        later = after_commit(session, dispatcher)
        later.classify(part.product_ids)  # before the next link: on_commit keeps the order
        if part.next_after_id is not None:
            later.reclassify(version, part.next_after_id)
    log.info(
        "model %s: re-classification after product %d: %d products enqueued (%d marked again) "
        "in %.3f s, %s",
        version,
        after_id,
        len(part.product_ids),
        part.marked,
        time.perf_counter() - started,
        "last chunk"
        if part.next_after_id is None
        else f"next chunk after product {part.next_after_id}",
    )
    return len(part.product_ids)


def embed_catalogue(version: str, *, send: Callable[[str, list[int]], None]) -> int:
    """Split the catalogue photos with no embedding for ``version`` into chunks of
    :data:`EMBED_CHUNK` and ``send(version, image_ids)`` each (only while ``version`` is the
    active one). Returns how many photos are to embed."""
    from catalog_ai.services.embed import images_to_embed

    with unit_of_work() as session:
        if _active_version(session, version) is None:
            return 0
        todo = [image_id for image_id, _ in images_to_embed(session, version)]
    for start in range(0, len(todo), EMBED_CHUNK):
        send(version, todo[start : start + EMBED_CHUNK])
    log.info("model %s: %d catalogue photos to embed", version, len(todo))
    return len(todo)


def embed_images(version: str, image_ids: Sequence[int]) -> int:
    """Embed these photos with the active model, if it is still ``version`` (idempotent: photos
    already embedded are skipped, a racing twin's rows are ignored)."""
    from catalog_ai.services.embed import compute_embeddings, images_to_embed, store_embeddings

    loaded = model_cache.current()
    if loaded is None or loaded[0].version != version:
        return 0
    wanted = set(image_ids)
    with unit_of_work() as session:
        rows = [r for r in images_to_embed(session, version) if r[0] in wanted]
    vectors = compute_embeddings(loaded[1], MediaStore(get_settings().media_dir), rows)
    with unit_of_work() as session:
        return store_embeddings(session, version, vectors)


def refresh_index(version: str | None = None) -> int:
    """Bring the search index of the active model (or ``version``) up to date with the
    embeddings in the database; returns how many photos it holds. Batched (periodic, and after
    catalogue embedding) rather than per upload: each update writes a new index generation."""
    from catalog_ai.services.embed import embedding_progress
    from catalog_ai.services.models import active_model
    from catalog_ai.services.search_index import update_index

    with unit_of_work() as session:
        if version is None:
            row = active_model(session)
            if row is None:
                return 0
            version = row.version
        if embedding_progress(session, version).embedded == 0:
            return 0  # nothing to index yet (no photo could be embedded)
        return update_index(session, version).n_indexed


def _classify_group(
    chunk: list[int],
    model,
    predictor,
    media: MediaStore,
    settings,
    summary: ChunkSummary,
    dispatcher: Dispatcher | None = None,
) -> None:
    """Claim, run and record ``chunk`` (one batched forward pass), adding to ``summary``. The
    webhook events (suggestion.created, product.accepted, product.failed) are written in the
    transaction that records what they report."""
    with unit_of_work() as session:
        work = claim(session, chunk, model_version_id=model.id, max_attempts=settings.max_attempts)
        # The products the claim itself failed (no photo, too many unfinished claims): loaded
        # by the claim, so in this session, and not handed to the model.
        taken = {w.product_id for w in work}
        claim_failed = [
            p.id
            for p in session.identity_map.values()
            if isinstance(p, Product) and p.status == ProductStatus.FAILED and p.id not in taken
        ]
        if claim_failed:
            emit_classified(
                session,
                suggested=(),
                accepted=(),
                failed=claim_failed,
                model_version_id=model.id,
                dispatcher=dispatcher,
            )
    model_started = time.perf_counter()
    outcomes = run_model(predictor, work, media=media) if work else []
    summary.model_seconds += time.perf_counter() - model_started
    with unit_of_work() as session:
        done = record(
            session, outcomes, model_version_id=model.id, memory_revision=predictor.memory_revision
        )
        emit_classified(
            session,
            suggested=done.suggested,
            accepted=done.accepted,
            failed=done.failed,
            model_version_id=model.id,
            dispatcher=dispatcher,
        )
    summary.near_duplicates += _flag_committed(done.new_embeddings, model.id)
    summary.claimed += len(work)
    summary.suggested += len(done.suggested)
    summary.accepted += len(done.accepted)
    summary.failed += len(done.failed)
    summary.skipped += len(chunk) - len(work) + len(done.skipped)
