"""Ingest on the embedded catalog (SQLite, tasks in-process): products, photos, duplicates,
failed rows, and classification only after the commit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from catalog_ai.db import (
    Product,
    ProductImage,
    ProductStatus,
    Suggestion,
    unit_of_work,
)
from catalog_ai.services.ingest import IngestError, ingest_files
from worker.support import activate, bad_files, make_photos, png_bytes, shared_model


def _count(model) -> int:
    with unit_of_work() as session:
        return session.scalar(select(func.count()).select_from(model))


def _statuses() -> dict[int, ProductStatus]:
    with unit_of_work() as session:
        return dict(session.execute(select(Product.id, Product.status)).all())


def test_each_photo_becomes_a_pending_product_with_its_stored_photo(catalog, tmp_path):
    photos = make_photos(tmp_path / "in", 3)
    with unit_of_work() as session:
        result = ingest_files(session, photos, media=catalog, dispatcher=None)
    assert len(result.created) == 3 and not result.duplicates and not result.failed
    with unit_of_work() as session:
        products = session.scalars(select(Product).order_by(Product.id)).all()
        assert [p.id for p in products] == result.created
        assert [p.title for p in products] == ["photo-0000", "photo-0001", "photo-0002"]
        assert {p.status for p in products} == {ProductStatus.PENDING}  # no model active yet
        image = session.scalars(
            select(ProductImage).where(ProductImage.product_id == products[0].id)
        ).one()
        assert (image.width, image.height, image.format) == (40, 40, "PNG")
        assert catalog.read(image.stored_path) == photos[0].read_bytes()


def test_identical_photos_are_stored_once_and_reported_with_their_product(catalog, tmp_path):
    photos = make_photos(tmp_path / "in", 2)
    copy = tmp_path / "in" / "copy-of-0.png"
    copy.write_bytes(photos[0].read_bytes())
    with unit_of_work() as session:
        first = ingest_files(session, [*photos, copy], media=catalog, dispatcher=None)
    assert first.duplicates == [(str(copy), first.created[0])]
    with unit_of_work() as session:
        again = ingest_files(session, [photos[1]], media=catalog, title="re-upload", dispatcher=None)
    assert again.created == [] and again.duplicates == [(str(photos[1]), first.created[1])]
    assert _count(Product) == 2 and _count(ProductImage) == 2
    assert len([p for p in catalog.root.rglob("*.png")]) == 2


def test_unusable_files_become_failed_products_with_the_reason(catalog, tmp_path):
    bad = bad_files(tmp_path / "bad")
    good = make_photos(tmp_path / "good", 1)
    files = [bad["empty"], bad["not_an_image"], bad["bomb"], bad["corrupt"], good[0]]
    with unit_of_work() as session:
        result = ingest_files(session, files, media=catalog, dispatcher=None)
    reasons = {Path(f.file).name: f.reason for f in result.failed}
    assert set(reasons) == {"empty.jpg", "notes.png", "bomb.png"}
    assert reasons["empty.jpg"] == "file is empty"
    assert "not an image file" in reasons["notes.png"]
    assert "too large" in reasons["bomb.png"]  # refused from the header: nothing decoded
    # The damage inside the cut-off PNG is behind a sound header: only the worker's decode finds it.
    assert len(result.created) == 2
    with unit_of_work() as session:
        failed = session.scalars(
            select(Product).where(Product.status == ProductStatus.FAILED)
        ).all()
        assert {p.id for p in failed} == {f.product_id for f in result.failed}
        assert {p.error for p in failed} == set(reasons.values())
        assert all(not p.images for p in failed)


def test_files_over_the_size_limit_are_not_read(catalog, tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(png_bytes((1, 2, 3), np.random.default_rng(0), size=200))
    with unit_of_work() as session:
        result = ingest_files(session, [big], media=catalog, max_bytes=1000, dispatcher=None)
    assert result.created == [] and "above the 1000 bytes limit" in result.failed[0].reason


def test_uploads_given_as_bytes(catalog):
    data = png_bytes((200, 10, 10), np.random.default_rng(1))
    with unit_of_work() as session:
        result = ingest_files(session, [("phone upload.png", data)], media=catalog, dispatcher=None)
    with unit_of_work() as session:
        product = session.get(Product, result.created[0])
        assert product.title == "phone upload"
        assert catalog.read(product.images[0].stored_path) == data


def test_external_id_names_exactly_one_new_product(catalog, tmp_path):
    photos = make_photos(tmp_path / "in", 3)
    with unit_of_work() as session, pytest.raises(IngestError, match="names one product"):
        ingest_files(session, photos[:2], media=catalog, external_id="SKU-1", dispatcher=None)
    with unit_of_work() as session:
        created = ingest_files(
            session, [photos[0]], media=catalog, external_id="SKU-1", dispatcher=None
        ).created
    with unit_of_work() as session:
        assert session.get(Product, created[0]).external_id == "SKU-1"
    with (
        unit_of_work() as session,
        pytest.raises(IngestError, match=f"already belongs to product {created[0]}"),
    ):
        ingest_files(session, [photos[1]], media=catalog, external_id="SKU-1", dispatcher=None)


def test_classification_runs_after_the_commit_and_never_after_a_rollback(
    catalog, tmp_path_factory, tmp_path, runner
):
    photos, bundle = shared_model(tmp_path_factory)
    activate(bundle.path)
    with unit_of_work() as session:
        result = ingest_files(session, photos[:5], media=catalog, dispatcher=runner)
        # Still inside the transaction: nothing was enqueued (and so nothing classified) yet.
        assert {p.status for p in session.scalars(select(Product))} == {ProductStatus.PENDING}
        assert runner.submitted == 0
    runner.drain()
    statuses = _statuses()
    assert set(statuses) == set(result.created)
    assert set(statuses.values()) <= {ProductStatus.SUGGESTED, ProductStatus.ACCEPTED}
    assert _count(Suggestion) == 5

    class Abort(Exception):
        pass

    with pytest.raises(Abort), unit_of_work() as session:
        ingest_files(session, photos[5:8], media=catalog, dispatcher=runner)
        raise Abort
    assert runner.drain(timeout=0)
    assert set(_statuses()) == set(result.created) and _count(Suggestion) == 5


def test_no_dispatcher_leaves_products_pending(catalog, tmp_path_factory):
    photos, bundle = shared_model(tmp_path_factory)
    activate(bundle.path)
    with unit_of_work() as session:
        result = ingest_files(session, photos[:2], media=catalog, dispatcher=None)
    assert set(_statuses().values()) == {ProductStatus.PENDING} and len(result.created) == 2
