"""The :class:`~catalog_ai.dispatch.Dispatcher` each entry point gets: :func:`default_dispatcher`.

- :class:`~catalog_ai.worker.tasks.CeleryDispatcher` (a broker is configured): sends messages;
  ``catalog-ai worker`` processes run them. It lives beside the tasks it sends, which use it
  for the work they fan out.
- :class:`InProcessDispatcher` (the embedded set-up, no broker): runs the same pipeline code on
  one background thread of this process, one job at a time, in order. The caller (a dashboard
  upload, a command) returns at once; a command that wants the result calls :meth:`drain`. A job
  that fails is logged, and its products still waiting are marked ``failed`` with the reason
  (``catalog-ai retry --failed`` puts them back), so nothing waits forever without a word.
  Webhook deliveries run on a second thread of their own (a slow receiver never holds up
  classification); a failed try is tried again by a timer while the process lives, and
  :meth:`InProcessDispatcher.start_sweeping` (long-lived processes: the API, the dashboard)
  sends what an earlier process left due.

This module imports no Celery unless a broker is configured.
"""

from __future__ import annotations

import heapq
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
        # Webhook deliveries: their own queue and thread, and the retries waiting for their time.
        self._hooks: queue.Queue[_Job] = queue.Queue(maxsize=max_queued)
        self._hooks_thread: threading.Thread | None = None
        self._retries: list[tuple[float, int, str]] = []  # (monotonic due, delivery id, db url)
        self._retry_wake = threading.Condition(threading.Lock())
        self._retry_thread: threading.Thread | None = None
        self._sweeper: threading.Event | None = None
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
                # Looked up when it runs (tests patch it); its webhook events come back here.
                return pipeline.classify_chunk(part, dispatcher=self)

            self._submit(_Job(f"classify {len(part)} products", run, part))

    def reclassify(self, version: str, after_id: int = 0) -> None:
        from catalog_ai.worker import pipeline

        self._submit(
            _Job(
                f"re-classify with {version} after product {after_id}",
                lambda: pipeline.reclassify(version, dispatcher=self, after_id=after_id),
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

    def deliver(self, delivery_ids: Sequence[int]) -> None:
        # The catalogue is fixed now: a retry that fires later goes to the same database.
        url = get_settings().database_url
        for delivery_id in delivery_ids:
            self._submit_delivery(delivery_id, url)

    # Webhook deliveries -----------------------------------------------------------------------

    def _submit_delivery(self, delivery_id: int, url: str) -> None:
        self._submit(
            _Job(f"webhook delivery {delivery_id}", lambda: self._deliver_one(delivery_id, url)),
            lane=self._hooks,
        )

    def _deliver_one(self, delivery_id: int, url: str) -> None:
        from catalog_ai.worker import webhooks

        outcome = webhooks.deliver(delivery_id, url=url)
        if outcome is not None and outcome.retry_in is not None:
            self._retry_later(delivery_id, url, outcome.retry_in)

    def _retry_later(self, delivery_id: int, url: str, delay_s: float) -> None:
        with self._retry_wake:
            # A hair after next_attempt_at, so the try finds the delivery due.
            heapq.heappush(self._retries, (time.monotonic() + delay_s + 0.01, delivery_id, url))
            self._retry_wake.notify()
            if self._retry_thread is None or not self._retry_thread.is_alive():
                self._retry_thread = threading.Thread(
                    target=self._retry_loop, name=f"{self._name}-retries", daemon=True
                )
                self._retry_thread.start()

    def _retry_loop(self) -> None:
        while True:
            with self._retry_wake:
                while not self._retries or self._retries[0][0] > time.monotonic():
                    left = self._retries[0][0] - time.monotonic() if self._retries else None
                    self._retry_wake.wait(left)
                _, delivery_id, url = heapq.heappop(self._retries)
            self._submit_delivery(delivery_id, url)

    def retries_waiting(self) -> int:
        """Failed webhook tries waiting for their next time in this process."""
        with self._retry_wake:
            return len(self._retries)

    def cancel_retries(self) -> int:
        """Forget the waiting retries (they stay due in the database for a sweep); how many."""
        with self._retry_wake:
            n = len(self._retries)
            self._retries.clear()
            return n

    def start_sweeping(self, interval_s: float | None = None) -> None:
        """Every ``interval_s`` (``CATALOG_AI_SWEEP_INTERVAL``) seconds, send the webhook
        deliveries that are due in the configured catalogue: what an earlier process left (it
        ended before a retry), or a hint that was lost. For long-lived processes; idempotent."""
        if self._sweeper is not None:
            return
        every = float(interval_s or get_settings().sweep_interval)
        url = get_settings().database_url
        self._sweeper = stop = threading.Event()

        def sweep() -> None:
            from catalog_ai.worker import webhooks

            while not stop.is_set():
                try:
                    for delivery_id in webhooks.due(url=url):
                        self._submit_delivery(delivery_id, url)
                except Exception:
                    log.exception("webhook sweep failed; trying again in %.0f s", every)
                stop.wait(every)

        threading.Thread(target=sweep, name=f"{self._name}-sweep", daemon=True).start()

    def stop_sweeping(self) -> None:
        if self._sweeper is not None:
            self._sweeper.set()
            self._sweeper = None

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

    def _submit(self, job: _Job, *, lane: queue.Queue[_Job] | None = None) -> None:
        lane = self._queue if lane is None else lane
        with self._lock:
            try:
                lane.put_nowait(job)
            except queue.Full:
                log.warning(
                    "in-process queue full (%d jobs): %s is left for a sweep (catalog-ai sweep)",
                    lane.maxsize,
                    job.what,
                )
                return
            self._unfinished += 1
            self.submitted += 1
            if lane is self._hooks:
                if self._hooks_thread is None or not self._hooks_thread.is_alive():
                    self._hooks_thread = threading.Thread(
                        target=self._loop, args=(lane,), name=f"{self._name}-webhooks", daemon=True
                    )
                    self._hooks_thread.start()
            elif self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()

    def _loop(self, lane: queue.Queue[_Job] | None = None) -> None:
        lane = self._queue if lane is None else lane
        while True:
            job = lane.get()
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
