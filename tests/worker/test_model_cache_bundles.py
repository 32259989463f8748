"""A bundle tampered with after activation (issue 13, finding 7): the model cache raises a
one-line BundleError naming the active version and the field, and uploads stay pending with no
attempt counted against them, instead of a traceback in every chunk."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from catalog_ai.db import Product, ProductStatus, migrate, unit_of_work
from catalog_ai.model.bundle import BundleError
from catalog_ai.photos.store import MediaStore
from catalog_ai.services.ingest import ingest_files
from catalog_ai.settings import get_settings
from catalog_ai.worker import model_cache
from catalog_ai.worker.pipeline import classify_chunk
from worker.support import activate, shared_model


def test_a_bundle_tampered_after_activation_leaves_uploads_pending(
    catalog_home, tmp_path, tmp_path_factory, caplog
):
    migrate.upgrade()
    photos, shared = shared_model(tmp_path_factory)
    bundle_dir = tmp_path / "bundle"
    shutil.copytree(shared.path, bundle_dir)
    version = activate(bundle_dir)
    manifest = json.loads((bundle_dir / "bundle.json").read_text())
    manifest["calibration"]["temperature"] = float("nan")
    (bundle_dir / "bundle.json").write_text(json.dumps(manifest))
    model_cache.reset()

    with pytest.raises(BundleError) as info:
        model_cache.current()
    message = str(info.value)
    assert "\n" not in message and version in message and "calibration.temperature" in message

    with caplog.at_level(logging.ERROR, logger="catalog_ai.worker.pipeline"):
        with unit_of_work() as session:  # left pending; the chunk is classified below
            ids = ingest_files(
                session, photos[:3], media=MediaStore(get_settings().media_dir), dispatcher=None
            ).created
        summary = classify_chunk(ids)
    assert summary.claimed == 0
    with unit_of_work() as session:
        rows = [session.get(Product, i) for i in ids]
        assert [p.status for p in rows] == [ProductStatus.PENDING] * 3
        assert all(not p.attempts for p in rows)
    assert any("calibration.temperature" in r.getMessage() for r in caplog.records)
