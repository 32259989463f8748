"""The Celery app: reliability settings, in-process without a broker, broker changes, outages."""

from __future__ import annotations

import logging

import pytest
import redis
from sqlalchemy import select

from catalog_ai.db import Product, ProductStatus, migrate, unit_of_work
from catalog_ai.photos.store import MediaStore
from catalog_ai.services.ingest import ingest_files
from catalog_ai.settings import Settings, get_settings, reset_settings
from catalog_ai.worker.app import QUEUE, SWEEP_TASK, app, celery_config, configure
from worker.support import make_photos


def _settings(**env: str) -> Settings:
    return Settings.from_env({"CATALOG_AI_HOME": "/tmp/catalog-test", **env})


def test_with_a_broker_the_reliability_settings_are_on():
    # What these settings buy (a dying worker's message comes back) is shown with real worker
    # processes in test_redelivery.py; this pins the values the app module documents.
    conf = celery_config(
        _settings(
            CATALOG_AI_BROKER_URL="redis://redis:6379/0",
            CATALOG_AI_VISIBILITY_TIMEOUT="120",
            CATALOG_AI_SWEEP_INTERVAL="30",
        )
    )
    assert conf["broker_url"] == "redis://redis:6379/0" and conf["task_always_eager"] is False
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    assert conf["worker_prefetch_multiplier"] == 1 and conf["task_ignore_result"]
    assert conf["accept_content"] == ["json"] and conf["task_serializer"] == "json"
    assert conf["broker_transport_options"]["visibility_timeout"] == 120
    assert conf["task_default_queue"] == QUEUE
    assert conf["beat_schedule"]["sweep-stale"] == {"task": SWEEP_TASK, "schedule": 30.0}


def test_without_a_broker_tasks_run_in_process_and_raise_their_errors():
    conf = celery_config(_settings())
    assert conf["task_always_eager"] and conf["task_eager_propagates"]
    assert conf["broker_url"] == "memory://" and conf["result_backend"] is None


def test_configure_follows_changed_settings():
    try:
        configure(_settings(CATALOG_AI_BROKER_URL="redis://elsewhere:6379/3"))
        assert app.conf.broker_url == "redis://elsewhere:6379/3" and not app.conf.task_always_eager
        configure(_settings())
        assert app.conf.task_always_eager
    finally:
        configure()


def test_the_tasks_are_registered_under_stable_names():
    import catalog_ai.worker.tasks  # noqa: F401

    assert {"catalog_ai.classify_products", "catalog_ai.reclassify_all", SWEEP_TASK} <= set(
        app.tasks
    )


@pytest.fixture
def catalog(catalog_home):
    migrate.upgrade()
    yield catalog_home
    configure()


def _ingest(photos) -> list[int]:
    with unit_of_work() as session:
        created = ingest_files(
            session, photos, media=MediaStore(get_settings().media_dir), dispatcher=_dispatcher()
        ).created
    drain(_dispatcher())
    return created


def _dispatcher():
    # What an entry point gets for the current settings: Celery with a broker, else in-process.
    from catalog_ai.worker.dispatch import default_dispatcher

    return default_dispatcher()


def drain(dispatcher) -> None:
    from catalog_ai.worker.dispatch import drain as wait

    wait(dispatcher)


def _statuses() -> set[ProductStatus]:
    with unit_of_work() as session:
        return set(session.scalars(select(Product.status)))


def test_an_unreachable_broker_leaves_uploads_pending_for_the_sweep(
    catalog, monkeypatch, tmp_path, caplog
):
    monkeypatch.setenv("CATALOG_AI_BROKER_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    reset_settings()
    with caplog.at_level(logging.WARNING):
        ids = _ingest(make_photos(tmp_path / "in", 2))
    assert len(ids) == 2 and _statuses() == {ProductStatus.PENDING}
    assert "cannot reach the broker" in caplog.text


@pytest.mark.integration
def test_after_running_in_process_a_configured_broker_gets_the_messages(
    catalog, monkeypatch, tmp_path, redis_url
):
    _ingest(
        make_photos(tmp_path / "a", 1, seed=1)
    )  # no broker: the task ran here (no model: no-op)
    monkeypatch.setenv("CATALOG_AI_BROKER_URL", redis_url)
    reset_settings()
    _ingest(make_photos(tmp_path / "b", 1, seed=2))
    client = redis.Redis.from_url(redis_url)
    assert client.llen(QUEUE) == 1  # not swallowed by the in-process set-up's cached connections
    client.close()
