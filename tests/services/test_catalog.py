"""Labelled photo import (``import_labelled_files``) with a concurrent writer, on the embedded
SQLite file and on the real PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select

from catalog_ai.db import Product, ProductImage, dispose_engines, migrate, unit_of_work
from catalog_ai.media import MediaStore
from catalog_ai.services.catalog import import_labelled_files, sync_taxonomy
from catalog_ai.services.ingest import ingest_files
from catalog_ai.settings import get_settings, reset_settings
from catalog_ai.taxonomy import Taxonomy
from worker.support import make_photos


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def any_catalog(request, catalog_home, monkeypatch):
    if request.param == "postgresql":
        monkeypatch.setenv("CATALOG_AI_DATABASE_URL", request.getfixturevalue("postgres_url"))
        reset_settings()
    migrate.upgrade()
    with unit_of_work() as session:
        sync_taxonomy(session, Taxonomy.from_paths(["Fruit > Kiwi"]), source="test")
    yield MediaStore(get_settings().media_dir)
    dispose_engines()


def test_a_photo_a_concurrent_ingest_stored_first_is_a_duplicate_of_the_import(
    any_catalog, tmp_path
):
    photos = make_photos(tmp_path / "Fruit" / "Kiwi", 4)
    ingested, checked = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}
    errors: list[BaseException] = []

    def uploader() -> None:
        with unit_of_work() as session:
            outcome["ingest"] = ingest_files(session, photos[:2], media=any_catalog, dispatcher=None)
            ingested.set()
            checked.wait(10)
            time.sleep(0.3)  # the import is now waiting for these rows

    def importer() -> None:
        ingested.wait(10)
        try:
            with unit_of_work() as session:
                # The upload is not committed: its photos do not look known yet.
                assert session.scalar(select(func.count()).select_from(ProductImage)) == 0
                checked.set()
                files = [(p, ("Fruit", "Kiwi")) for p in photos]
                outcome["import"] = import_labelled_files(session, files, media=any_catalog)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=uploader), threading.Thread(target=importer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    summary = outcome["import"]
    assert (summary.imported, summary.duplicates, summary.failed) == (2, 2, [])
    with unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(Product)) == 4
        assert session.scalar(select(func.count()).select_from(ProductImage)) == 4
