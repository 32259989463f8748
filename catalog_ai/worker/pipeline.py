"""What a classification task does, as a plain function: claim, run the model, record.

Kept apart from Celery so the embedded set-up, the benchmark and the tests call exactly the code
a worker runs. Each chunk uses two short transactions and none while the network runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from catalog_ai.db import unit_of_work
from catalog_ai.media import MediaStore
from catalog_ai.services.classify import claim, record, run_model
from catalog_ai.settings import get_settings
from catalog_ai.worker import model_cache

__all__ = ["ChunkSummary", "classify_chunk"]

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
    seconds: float = 0.0  # the whole call
    model_seconds: float = 0.0  # of which decoding, the forward pass and decisions

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "seconds": round(self.seconds, 3),
            "model_seconds": round(self.model_seconds, 3),
        }


def classify_chunk(product_ids: Sequence[int], *, media: MediaStore | None = None) -> ChunkSummary:
    """Classify ``product_ids`` with the active model, ``CATALOG_AI_CLASSIFY_CHUNK`` at a time.

    With no active model the products stay ``pending`` (activating a model enqueues them).
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
        loaded = model_cache.current()
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
            work = claim(
                session, chunk, model_version_id=model.id, max_attempts=settings.max_attempts
            )
        model_started = time.perf_counter()
        outcomes = run_model(predictor, work, media=media) if work else []
        summary.model_seconds += time.perf_counter() - model_started
        with unit_of_work() as session:
            done = record(session, outcomes, model_version_id=model.id,
                          memory_revision=predictor.memory_revision)
        summary.claimed += len(work)
        summary.suggested += len(done.suggested)
        summary.accepted += len(done.accepted)
        summary.failed += len(done.failed)
        summary.skipped += len(chunk) - len(work) + len(done.skipped)
    summary.seconds = time.perf_counter() - started
    return summary
