"""Ingest on the embedded catalog (SQLite, tasks in-process): products, photos, duplicates,
failed rows, and classification only after the commit."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete, func, select
from worker.support import activate, bad_files, make_photos, png_bytes, shared_model

from catalog_ai.db import (
    Product,
    ProductImage,
    ProductStatus,
    Suggestion,
    unit_of_work,
)
from catalog_ai.services.ingest import IngestError, ingest_files


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
    assert result.failed[0].product_id is None and _count(Product) == 0  # nothing reached us
    # The same bytes uploaded (they did reach us): one failed product, however often it comes.
    upload = [("big upload.png", big.read_bytes())]
    with unit_of_work() as session:
        first = ingest_files(session, upload, media=catalog, max_bytes=1000, dispatcher=None).failed[0]
    with unit_of_work() as session:
        again = ingest_files(session, upload, media=catalog, max_bytes=1000, dispatcher=None).failed[0]
    assert first.product_id == again.product_id is not None and _count(Product) == 1


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


# --- bad files, idempotency --------------------------------------------------------------------


def test_the_same_bad_bytes_give_the_same_failed_product_every_time(catalog, tmp_path):
    bad = bad_files(tmp_path / "bad")
    renamed = tmp_path / "same-junk-other-name.png"
    renamed.write_bytes(bad["not_an_image"].read_bytes())
    with unit_of_work() as session:
        first = ingest_files(session, [bad["not_an_image"], bad["empty"], renamed], media=catalog, dispatcher=None)
    ids = [f.product_id for f in first.failed]
    assert ids[0] == ids[2] and len(set(ids)) == 2  # the renamed copy is the same product
    with unit_of_work() as session:
        again = ingest_files(session, [bad["not_an_image"], bad["empty"]], media=catalog, dispatcher=None)
    assert [f.product_id for f in again.failed] == ids[:2]
    assert [f.reason for f in again.failed] == [f.reason for f in first.failed[:2]]
    assert _count(Product) == 2 and again.created == [] and again.ingested == []


def test_a_path_that_cannot_be_read_is_reported_and_makes_no_product(catalog, tmp_path):
    good = make_photos(tmp_path / "good", 1)
    missing = tmp_path / "missing" / "x.jpg"
    with unit_of_work() as session:
        result = ingest_files(session, [missing, good[0], tmp_path / "good"], media=catalog, dispatcher=None)
    assert [(f.file, f.product_id) for f in result.failed] == [
        (str(missing), None),
        (str(tmp_path / "good"), None),
    ]
    assert result.failed[0].reason == "file not found"
    assert result.ingested == [(str(good[0]), result.created[0])]
    assert _count(Product) == 1


def test_the_same_upload_with_its_external_id_sent_twice_is_a_duplicate(catalog, tmp_path):
    photo = make_photos(tmp_path / "in", 1)[0]
    with unit_of_work() as session:
        first = ingest_files(session, [photo], media=catalog, external_id="SKU-9", dispatcher=None)
    with unit_of_work() as session:
        again = ingest_files(session, [photo], media=catalog, external_id="SKU-9", dispatcher=None)
    assert again.duplicates == [(str(photo), first.created[0])] and _count(Product) == 1
    junk = bad_files(tmp_path / "bad")["not_an_image"]
    with unit_of_work() as session:
        failed = ingest_files(session, [junk], media=catalog, external_id="SKU-10", dispatcher=None).failed
    with unit_of_work() as session:
        again = ingest_files(session, [junk], media=catalog, external_id="SKU-10", dispatcher=None)
    assert again.failed == failed and again.duplicates == [] and _count(Product) == 2


# --- concurrent writers ------------------------------------------------------------------------


def _outcomes(result) -> dict[str, int]:
    """file -> the product it now is (new or an existing one); every file once."""
    named = [*result.ingested, *result.duplicates, *((f.file, f.product_id) for f in result.failed)]
    assert len(named) == len({f for f, _ in named}), named
    return dict(named)


def _one_product_per_photo() -> dict[str, int]:
    with unit_of_work() as session:
        rows = session.execute(select(ProductImage.content_hash, ProductImage.product_id)).all()
        products = session.scalar(select(func.count()).select_from(Product))
    assert len(rows) == products  # no product without its photo, none with two
    return dict(rows)


def test_a_photo_stored_by_a_concurrent_writer_is_a_duplicate_not_a_crash(any_catalog, tmp_path):
    """Writer B reads before A commits (so it sees no duplicate), then its insert meets A's row:
    it must wait and report A's product, and still ingest its own photos."""
    shared = make_photos(tmp_path / "shared", 6, seed=1)
    own_a = make_photos(tmp_path / "a", 2, seed=2)
    own_b = make_photos(tmp_path / "b", 2, seed=3)
    a_wrote, b_checked = threading.Event(), threading.Event()
    results: dict[str, object] = {}

    def writer_a() -> None:
        with unit_of_work() as session:
            results["a"] = ingest_files(session, [*shared, *own_a], media=any_catalog, dispatcher=None)
            a_wrote.set()
            b_checked.wait(10)
            time.sleep(0.3)  # B is now blocked on A's rows (or about to be)

    def writer_b() -> None:
        a_wrote.wait(10)
        with unit_of_work() as session:
            # A's rows are not committed: nothing in the catalog looks like a duplicate yet.
            assert all(_product_of(session, p) is None for p in shared)
            b_checked.set()
            results["b"] = ingest_files(session, [*reversed(shared), *own_b], media=any_catalog, dispatcher=None)

    errors = _run_threads(writer_a, writer_b)
    assert errors == []
    a, b = _outcomes(results["a"]), _outcomes(results["b"])
    assert set(a) == {str(p) for p in [*shared, *own_a]}
    assert set(b) == {str(p) for p in [*shared, *own_b]}
    assert {b[str(p)] for p in shared} == {a[str(p)] for p in shared}  # B names A's products
    assert results["b"].duplicates and len(results["b"].created) == 2
    assert len(_one_product_per_photo()) == 10


def _product_of(session, photo: Path) -> int | None:
    digest = hashlib.sha256(photo.read_bytes()).hexdigest()
    return session.scalar(
        select(ProductImage.product_id).where(ProductImage.content_hash == digest)
    )


def _run_threads(*targets) -> list[BaseException]:
    errors: list[BaseException] = []

    def guarded(target):
        def run() -> None:
            try:
                target()
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)

        return run

    threads = [threading.Thread(target=guarded(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


def test_the_same_bad_bytes_from_two_writers_make_one_failed_product(any_catalog, tmp_path):
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not a photo at all, just text\n")
    a_wrote, b_checked = threading.Event(), threading.Event()
    results: dict[str, object] = {}

    def writer_a() -> None:
        with unit_of_work() as session:
            results["a"] = ingest_files(session, [junk], media=any_catalog, dispatcher=None)
            a_wrote.set()
            b_checked.wait(10)
            time.sleep(0.3)

    def writer_b() -> None:
        a_wrote.wait(10)
        with unit_of_work() as session:
            assert session.scalar(select(func.count()).select_from(Product)) == 0
            b_checked.set()
            results["b"] = ingest_files(session, [("upload.jpg", junk.read_bytes())],
                                        media=any_catalog, dispatcher=None)

    assert _run_threads(writer_a, writer_b) == []
    [fa], [fb] = results["a"].failed, results["b"].failed
    assert fa.product_id == fb.product_id is not None and _count(Product) == 1


def test_an_external_id_taken_by_a_concurrent_writer(any_catalog, tmp_path):
    """The same upload (photo and id) sent twice at once: one product, the other a duplicate.
    A different photo under the id another writer just took: the usual one-line refusal."""
    photo, other = make_photos(tmp_path / "in", 2)
    a_wrote, b_checked = threading.Event(), threading.Event()
    results: dict[str, object] = {}

    def writer_a() -> None:
        with unit_of_work() as session:
            results["a"] = ingest_files(session, [photo], media=any_catalog, external_id="SKU-7", dispatcher=None)
            a_wrote.set()
            b_checked.wait(10)
            time.sleep(0.3)

    def writer_b(file: Path) -> None:
        a_wrote.wait(10)
        with unit_of_work() as session:
            assert session.scalar(select(func.count()).select_from(Product)) == 0
            b_checked.set()
            # A copy under another name: the same bytes, so the content check cannot see A.
            results["b"] = ingest_files(
                session, [("copy.png", file.read_bytes())], media=any_catalog,
                external_id="SKU-7", dispatcher=None,
            )

    assert _run_threads(writer_a, lambda: writer_b(photo)) == []
    assert results["b"].duplicates == [("copy.png", results["a"].created[0])]

    with unit_of_work() as session:
        session.execute(delete(Product))
    a_wrote.clear(), b_checked.clear()
    errors = _run_threads(writer_a, lambda: writer_b(other))
    assert len(errors) == 1 and isinstance(errors[0], IngestError)
    assert f"already belongs to product {results['a'].created[0]}" in str(errors[0])
    assert _count(Product) == 1
