"""Labelled photo import (``import_labelled_files``) with a concurrent writer, on the embedded
SQLite file and on the real PostgreSQL."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from worker.support import make_photos

from catalog_ai.db import (
    Category,
    LabelSource,
    Product,
    ProductImage,
    ProductStatus,
    unit_of_work,
)
from catalog_ai.photos.store import MediaStore
from catalog_ai.services.catalog_import import import_labelled_files, sync_taxonomy
from catalog_ai.services.ingest import ingest_files
from catalog_ai.taxonomy import Taxonomy


@pytest.fixture
def any_catalog(any_catalog):
    """The conftest's empty catalog (SQLite and PostgreSQL) with the two leaves these tests use."""
    with unit_of_work() as session:
        sync_taxonomy(
            session, Taxonomy.from_paths(["Fruit > Kiwi", "Fruit > Lime"]), source="test"
        )
    return any_catalog


def test_a_photo_a_concurrent_ingest_stored_first_is_stored_once_with_the_imports_label(
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
    # The upload's photos were still waiting for a model: the import's label is a person's.
    assert (summary.imported, summary.relabelled, summary.duplicates, summary.failed) == (
        2, 2, 0, []
    )
    with unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(Product)) == 4
        assert session.scalar(select(func.count()).select_from(ProductImage)) == 4


# --------------------------------------------------------------------------- label provenance
def _category_id(session, path: str) -> int:
    return session.scalar(select(Category.id).where(Category.path == path))


def _uploaded(media: MediaStore, photos, **state) -> list[int]:
    """Products for ``photos`` as an upload makes them (pending), then set to ``state``, with
    ``category`` given as a path."""
    with unit_of_work() as session:
        ids = ingest_files(session, photos, media=media, dispatcher=None).created
        category = state.pop("category", None)
        for product in session.scalars(select(Product).where(Product.id.in_(ids))):
            if category is not None:
                product.category_id = _category_id(session, category)
            for key, value in state.items():
                setattr(product, key, value)
    return ids


def _state(pid: int) -> tuple[str | None, LabelSource | None, ProductStatus]:
    with unit_of_work() as session:
        product = session.get(Product, pid)
        path = None if product.category is None else product.category.path
        return path, product.label_source, product.status


@pytest.mark.parametrize(
    "state",
    [
        {},  # pending: no model has seen it yet
        {"status": ProductStatus.ACCEPTED, "label_source": LabelSource.MODEL,
         "category": "Fruit > Lime"},  # auto-accepted from a model's wrong guess
        {"status": ProductStatus.SUGGESTED},
        {"status": ProductStatus.FAILED, "error": "classification started 5 times"},
    ],
    ids=["pending", "model-accepted", "suggested", "failed"],
)
@pytest.mark.parametrize("source", [LabelSource.IMPORT, LabelSource.FEWSHOT])
def test_a_photo_without_a_persons_label_takes_the_imported_one(
    any_catalog, tmp_path, state, source
):
    photos = make_photos(tmp_path / "up", 2)
    [pid, _] = _uploaded(any_catalog, photos, **state)
    files = [(photos[0], ("Fruit", "Kiwi"))]
    with unit_of_work() as session:
        summary = import_labelled_files(session, files, media=any_catalog, label_source=source)
    assert (summary.imported, summary.relabelled, summary.duplicates) == (0, 1, 0)
    assert summary.conflicts == [] and summary.failed == []
    assert _state(pid) == ("Fruit > Kiwi", source, ProductStatus.ACCEPTED)
    with unit_of_work() as session:
        product = session.get(Product, pid)
        assert product.labelled_by_person and product.error is None
        assert session.scalar(select(func.count()).select_from(Product)) == 2  # nothing added


@pytest.mark.parametrize("source", [LabelSource.REVIEW, LabelSource.IMPORT, LabelSource.FEWSHOT])
def test_a_persons_label_stays_and_a_different_one_is_reported_as_a_conflict(
    any_catalog, tmp_path, source
):
    photos = make_photos(tmp_path / "up", 2)
    ids = _uploaded(
        any_catalog, photos,
        status=ProductStatus.ACCEPTED, label_source=source, category="Fruit > Lime",
    )
    files = [(photos[0], ("Fruit", "Kiwi")), (photos[1], ("Fruit", "Lime"))]
    with unit_of_work() as session:
        summary = import_labelled_files(session, files, media=any_catalog)
    assert (summary.imported, summary.relabelled, summary.duplicates) == (0, 0, 2)
    [conflict] = summary.conflicts  # the agreeing one (Lime) is a plain duplicate
    assert (conflict.file, conflict.product_id) == (str(photos[0]), ids[0])
    assert (conflict.kept, conflict.given) == ("Fruit > Lime", "Fruit > Kiwi")
    assert "Fruit > Lime" in conflict.describe() and "Fruit > Kiwi" in conflict.describe()
    for pid in ids:
        assert _state(pid) == ("Fruit > Lime", source, ProductStatus.ACCEPTED)


def test_a_reviewers_rejection_stays_and_is_reported_against_an_import(any_catalog, tmp_path):
    photos = make_photos(tmp_path / "up", 1)
    [pid] = _uploaded(
        any_catalog, photos, status=ProductStatus.REJECTED, label_source=LabelSource.REVIEW
    )
    with unit_of_work() as session:
        summary = import_labelled_files(
            session, [(photos[0], ("Fruit", "Kiwi"))], media=any_catalog
        )
    assert (summary.relabelled, summary.duplicates) == (0, 1)
    assert [(c.kept, c.given) for c in summary.conflicts] == [(None, "Fruit > Kiwi")]
    assert "rejected" in summary.conflicts[0].describe()
    assert _state(pid) == (None, LabelSource.REVIEW, ProductStatus.REJECTED)


def test_the_same_photo_twice_in_one_import_under_two_categories_is_a_conflict(
    any_catalog, tmp_path
):
    [photo] = make_photos(tmp_path / "a", 1)
    twin = tmp_path / "b" / "twin.png"
    twin.parent.mkdir()
    twin.write_bytes(photo.read_bytes())
    files = [(photo, ("Fruit", "Kiwi")), (twin, ("Fruit", "Lime"))]
    ticked: list[Path] = []
    with unit_of_work() as session:
        summary = import_labelled_files(session, files, media=any_catalog, on_file=ticked.append)
    assert (summary.imported, summary.duplicates) == (1, 1)
    assert [(c.file, c.kept, c.given) for c in summary.conflicts] == [
        (str(twin), "Fruit > Kiwi", "Fruit > Lime")
    ]
    assert sorted(ticked) == sorted([photo, twin])


def test_each_taxonomy_version_records_the_fingerprint_of_the_whole_catalogue_tree(any_catalog):
    # The version's fingerprint is computed from the paths in hand; it must be the one the
    # stored tree gives (models compare it to their own tree's).
    from catalog_ai.db import TaxonomyVersion
    from catalog_ai.services.catalog_import import catalog_taxonomy

    first = Taxonomy.from_paths(["Fruit > Apple > Green", "Veg > Carrot"])
    second = Taxonomy.from_paths(["Fruit > Apple > Red", "Fruit > Pear", "Dairy"])
    for tree in (first, second):
        with unit_of_work() as s:
            version = sync_taxonomy(s, tree, source="test").version
        with unit_of_work() as s:
            stored = s.get(TaxonomyVersion, version)
            assert stored is not None
            assert stored.fingerprint == catalog_taxonomy(s).fingerprint()
    with unit_of_work() as s:
        stored_paths = {node.text for node in catalog_taxonomy(s)}
    assert {"Fruit > Apple > Green", "Fruit > Apple > Red", "Fruit > Pear", "Dairy"} <= stored_paths
