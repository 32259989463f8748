"""The :class:`~catalog_ai.dispatch.Dispatcher` each entry point gets: :func:`default_dispatcher`.

- :class:`~catalog_ai.worker.tasks.CeleryDispatcher` (a broker is configured): sends messages;
  ``catalog-ai worker`` processes run them. It lives beside the tasks it sends, which use it
  for the work they fan out.
- :class:`InProcessDispatcher` (the embedded set-up, no broker): runs the same pipeline code on
  one background thread of this process, one job at a time, in order. The caller (a dashboard
  upload, a command) returns at once; a command that wants the result calls :meth:`drain`. A job
  that fails is logged, and its products still waiting are marked ``failed`` with the reason
  (``catalog-ai retry --failed`` puts them back), so nothing waits forever without a word.

This module imports no Celery unless a broker is configured.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from catalog_ai.dispatch import Dispatcher
from catalog_ai.settings import get_settings

__all__ = ["InProcessDispatcher", "default_dispatcher", "drain"]

log = logging.getLogger(__name__)


# --- in-process -----------------------------------------------------------------------------------

#: How many jobs may wait; beyond that new work is left pending in the database for a sweep
#: (``catalog-ai sweep``) rather than held in memory without bound.
MAX_QUEUED_JOBS = 10_000
#: Attempts of a job that failed for a reason that may pass (a database lock, an I/O error).
TRANSIENT_ATTEMPTS = 3


@dataclass
class _Job:
    what: str
    run: Callable[[], object]
    product_ids: tuple[int, ...] = ()  # marked failed if the job gives up
    photos: int = 0  # catalogue photos it embeds (for progress)


class InProcessDispatcher:
    """Runs work on one background thread, one job at a time, in the order it was given.

    Jobs that fan out (re-classification, catalogue embedding) queue their pieces behind
    themselves, so :meth:`drain` waits for those too.
    """

    def __init__(self, *, max_queued: int = MAX_QUEUED_JOBS, name: str = "catalog-ai-runner"):
        self._queue: queue.Queue[_Job] = queue.Queue(maxsize=max_queued)
        self._name = name
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._unfinished = 0
        self.submitted = 0
        self.finished = 0
        self.products_done = 0
        self.photos_done = 0
        self.errors: list[str] = []  # one line per job that gave up (also logged)

    # Dispatcher -----------------------------------------------------------------------------

    def classify(self, product_ids: Sequence[int]) -> None:
        from catalog_ai.worker import pipeline

        chunk = get_settings().classify_chunk
        ids = list(product_ids)
        for start in range(0, len(ids), chunk):
            part = tuple(ids[start : start + chunk])

            def run(part: tuple[int, ...] = part) -> object:
                return pipeline.classify_chunk(part)  # looked up when it runs (tests patch it)

            self._submit(_Job(f"classify {len(part)} products", run, part))

    def reclassify(self, version: str) -> None:
        from catalog_ai.worker import pipeline

        self._submit(
            _Job(
                f"re-classify with {version}",
                lambda: pipeline.reclassify(version, dispatcher=self),
            )
        )

    def embed_catalogue(self, version: str) -> None:
        from catalog_ai.worker import pipeline

        def fan_out() -> None:
            if pipeline.embed_catalogue(version, send=self.embed_images):
                # After the chunks queued just now: the index is written once, not per chunk.
                self._submit(
                    _Job(f"search index for {version}", lambda: pipeline.refresh_index(version))
                )

        self._submit(_Job(f"catalogue embedding with {version}", fan_out))

    def embed_images(self, version: str, image_ids: Sequence[int]) -> None:
        from catalog_ai.worker import pipeline

        ids = list(image_ids)
        self._submit(
            _Job(
                f"embed {len(ids)} photos with {version}",
                lambda: pipeline.embed_images(version, ids),
                photos=len(ids),
            )
        )

    # Waiting ----------------------------------------------------------------------------------

    def pending(self) -> int:
        """Jobs queued or running."""
        with self._lock:
            return self._unfinished

    def drain(self, *, timeout: float | None = None, progress: bool = False) -> bool:
        """Wait until every job (and every job they queued) has finished; False on timeout."""
        from catalog_ai.progress import progress_bar

        deadline = None if timeout is None else time.monotonic() + timeout
        with progress_bar(
            total=max(self.pending(), 1),
            desc="classifying in this process",
            unit="task",
            enable=progress and self.pending() > 0,
        ) as bar:
            done_before = self.finished
            while True:
                with self._idle:
                    if self._unfinished == 0:
                        break
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self._idle.wait(0.25 if left is None else min(0.25, left))
                    unfinished, finished = self._unfinished, self.finished
                if progress and hasattr(bar, "total"):
                    bar.total = finished - done_before + unfinished
                    bar.n = finished - done_before
                    bar.set_postfix_str(
                        f"{self.products_done} products, {self.photos_done} photos", refresh=False
                    )
                    bar.update(0)  # redraws only after the bar's mininterval (5 s in a log file)
            if progress and hasattr(bar, "total"):
                bar.total = bar.n = self.finished - done_before
                bar.refresh()
        return True

    # The runner -------------------------------------------------------------------------------

    def _submit(self, job: _Job) -> None:
        with self._lock:
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                log.warning(
                    "in-process queue full (%d jobs): %s is left for a sweep (catalog-ai sweep)",
                    self._queue.maxsize,
                    job.what,
                )
                return
            self._unfinished += 1
            self.submitted += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            try:
                self._run(job)
            finally:
                with self._idle:
                    self._unfinished -= 1
                    self.finished += 1
                    if job.product_ids:
                        self.products_done += len(job.product_ids)
                    self.photos_done += job.photos
                    self._idle.notify_all()

    def _run(self, job: _Job) -> None:
        from sqlalchemy.exc import OperationalError

        from catalog_ai.services.classify import TransientStorageError

        for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
            try:
                job.run()
                return
            except (OperationalError, TransientStorageError) as exc:
                if attempt == TRANSIENT_ATTEMPTS:
                    self._give_up(job, exc)
                    return
                log.warning(
                    "%s: %s; trying again (%d of %d)",
                    job.what,
                    exc,
                    attempt + 1,
                    TRANSIENT_ATTEMPTS,
                )
                time.sleep(0.5 * 2**attempt)
            except Exception as exc:
                self._give_up(job, exc)
                return

    def _give_up(self, job: _Job, exc: BaseException) -> None:
        reason = f"{type(exc).__name__}: {exc}".strip()
        log.error("%s failed: %s", job.what, reason, exc_info=exc)
        self.errors.append(f"{job.what}: {reason}")
        if not job.product_ids:
            return
        from catalog_ai.db import unit_of_work
        from catalog_ai.services.classify import fail_unfinished

        try:
            with unit_of_work() as session:
                fail_unfinished(
                    session,
                    job.product_ids,
                    f"classification failed in this process ({reason[:300]}); fix the cause, "
                    "then run: catalog-ai retry --failed",
                )
        except Exception:
            log.exception("could not mark products %s failed", list(job.product_ids))


# --- which one ------------------------------------------------------------------------------------

_lock = threading.Lock()
_in_process: InProcessDispatcher | None = None


def default_dispatcher() -> Dispatcher:
    """Celery when ``CATALOG_AI_BROKER_URL`` is set, else this process's one in-process runner."""
    global _in_process
    if get_settings().broker_url is not None:
        from catalog_ai.worker.tasks import CeleryDispatcher  # imports Celery

        return CeleryDispatcher()
    with _lock:
        if _in_process is None:
            _in_process = InProcessDispatcher()
        return _in_process


def drain(dispatcher: Dispatcher, *, progress: bool = False, timeout: float | None = None) -> bool:
    """Wait for ``dispatcher``'s in-process work to finish (nothing to wait for with Celery)."""
    if isinstance(dispatcher, InProcessDispatcher):
        return dispatcher.drain(progress=progress, timeout=timeout)
    return True
