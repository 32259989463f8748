"""Fixtures of the service tests: one torch thread, an empty embedded catalog."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import one_torch_thread  # noqa: F401 (autouse fixture)
from worker.support import shared_model

from catalog_ai.db import dispose_engines, migrate
from catalog_ai.photos.store import MediaStore
from catalog_ai.settings import get_settings, reset_settings
from catalog_ai.worker import model_cache
from services.reviewed_catalog import reviewed_catalog  # noqa: F401 (a fixture)
from services.search_catalog import any_db, search_catalog, sqlite_db  # noqa: F401 (fixtures)


@pytest.fixture
def catalog(catalog_home: Path) -> Iterator[MediaStore]:
    """The embedded catalog, migrated and empty; no broker, so tasks run in-process."""
    migrate.upgrade()
    yield MediaStore(get_settings().media_dir)
    dispose_engines()
    model_cache.reset()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def any_catalog(request, catalog_home, monkeypatch) -> Iterator[MediaStore]:
    """An empty catalog, once on the embedded SQLite file and once on the real PostgreSQL."""
    if request.param == "postgresql":
        monkeypatch.setenv("CATALOG_AI_DATABASE_URL", request.getfixturevalue("postgres_url"))
        reset_settings()
    migrate.upgrade()
    yield MediaStore(get_settings().media_dir)
    dispose_engines()


@pytest.fixture
def model(tmp_path_factory):
    """(photos, bundle) of the shared test model."""
    return shared_model(tmp_path_factory)
