"""The in-process runner of the embedded set-up: work runs on its own thread, in order, one job at
a time; a job that fails marks its products failed with the reason, and the next job goes on."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from catalog_ai.db import Product, ProductStatus, migrate, unit_of_work
from catalog_ai.photos.store import MediaStore
from catalog_ai.services.ingest import ingest_files
from catalog_ai.settings import get_settings
from catalog_ai.worker import pipeline
from catalog_ai.worker.dispatch import InProcessDispatcher, default_dispatcher
from worker.support import activate, hold_classification, shared_model


@pytest.fixture
def catalog(catalog_home):
    migrate.upgrade()
    return MediaStore(get_settings().media_dir)


def _statuses(ids) -> dict[int, ProductStatus]:
    with unit_of_work() as session:
        rows = session.execute(select(Product.id, Product.status).where(Product.id.in_(ids)))
        return dict(rows.all())


def _ingest(media, files, dispatcher) -> list[int]:
    with unit_of_work() as session:
        return ingest_files(session, files, media=media, dispatcher=dispatcher).created


def test_work_runs_off_the_callers_thread_and_the_caller_returns_at_once(
    catalog, tmp_path_factory, runner, monkeypatch
):
    photos, bundle = shared_model(tmp_path_factory)
    activate(bundle.path)
    release, threads = hold_classification(monkeypatch)
    started = time.monotonic()
    ids = _ingest(catalog, photos[:3], runner)
    waited = time.monotonic() - started
    try:
        # The commit hook only queued the work: the products wait, the caller did not.
        assert set(_statuses(ids).values()) <= {ProductStatus.PENDING, ProductStatus.PROCESSING}
        assert runner.pending() == 1 and waited < 10
        assert not runner.drain(timeout=0.2)  # still held up
    finally:
        release.set()
    assert runner.drain(timeout=60)
    assert threads and threads[0] is not threading.current_thread()
    assert set(_statuses(ids).values()) <= {ProductStatus.SUGGESTED, ProductStatus.ACCEPTED}


def test_a_failing_job_fails_its_products_visibly_and_the_next_job_runs(
    catalog, tmp_path_factory, runner, monkeypatch, caplog
):
    photos, bundle = shared_model(tmp_path_factory)
    activate(bundle.path)
    real, calls = pipeline.classify_chunk, []

    def first_one_breaks(product_ids, **kwargs):
        calls.append(list(product_ids))
        if len(calls) == 1:
            raise RuntimeError("the network fell over")
        return real(product_ids, **kwargs)

    monkeypatch.setattr(pipeline, "classify_chunk", first_one_breaks)
    doomed = _ingest(catalog, photos[:2], runner)
    fine = _ingest(catalog, photos[2:4], runner)
    assert runner.drain(timeout=60)
    with unit_of_work() as session:
        products = {p.id: p for p in session.scalars(select(Product))}
    for pid in doomed:
        assert products[pid].status == ProductStatus.FAILED
        assert "the network fell over" in products[pid].error
        assert "catalog-ai retry --failed" in products[pid].error
    assert {products[pid].status for pid in fine} <= {
        ProductStatus.SUGGESTED,
        ProductStatus.ACCEPTED,
    }
    assert len(runner.errors) == 1 and "the network fell over" in caplog.text


def test_jobs_run_one_at_a_time_in_order_and_drain_waits_for_what_they_queue(runner):
    order, running, overlap = [], [0], []

    def job(name: str, then=None):
        def run():
            running[0] += 1
            overlap.append(running[0])
            time.sleep(0.02)
            order.append(name)
            if then:
                then()
            running[0] -= 1

        return run

    from catalog_ai.worker.dispatch import _Job

    runner._submit(_Job("a", job("a", then=lambda: runner._submit(_Job("a2", job("a2"))))))
    runner._submit(_Job("b", job("b")))
    assert runner.drain(timeout=10)
    assert order == ["a", "b", "a2"] and max(overlap) == 1


def test_each_set_up_gets_its_dispatcher(catalog_home, monkeypatch):
    first = default_dispatcher()
    assert isinstance(first, InProcessDispatcher) and default_dispatcher() is first
    monkeypatch.setenv("CATALOG_AI_BROKER_URL", "redis://127.0.0.1:1/0")
    from catalog_ai.settings import reset_settings

    reset_settings()
    from catalog_ai.worker.tasks import CeleryDispatcher

    assert isinstance(default_dispatcher(), CeleryDispatcher)
