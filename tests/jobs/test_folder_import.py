"""Folder import end to end on the embedded SQLite catalog (tiny photos made in the test)."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from sqlalchemy import func, select

from catalog_ai.db import Category, Product, ProductImage, ProductStatus, migrate, unit_of_work
from catalog_ai.errors import ImportFolderError
from catalog_ai.jobs.folder_import import import_folder


def _jpeg(color: tuple[int, int, int], size=(24, 16)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture
def photo_tree(tmp_path):
    root = tmp_path / "photos"
    files = {
        "Fruit/Apple/Granny-Smith/a1.jpg": _jpeg((0, 200, 0)),
        "Fruit/Apple/Granny-Smith/a2.jpg": _jpeg((10, 190, 0)),
        "Fruit/Apple/Pink-Lady/p1.jpg": _jpeg((230, 100, 120)),
        "Fruit/Avocado/v1.jpg": _jpeg((40, 60, 10)),
        "Fruit/Avocado/copy-of-v1.jpg": _jpeg((40, 60, 10)),  # same bytes as v1
        "Packages/Milk/m1.jpg": _jpeg((250, 250, 250)),
        "Packages/Milk/broken.jpg": _jpeg((1, 2, 3))[:60],  # truncated
        "Packages/Milk/notes.png": b"this is not a picture",
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def _counts():
    with unit_of_work() as s:
        return (
            s.scalar(select(func.count()).select_from(Product)),
            s.scalar(select(func.count()).select_from(ProductImage)),
            s.scalar(select(func.count()).select_from(Category)),
        )


def test_import_folder_then_rerun_adds_nothing(catalog_home, photo_tree):
    migrate.upgrade()
    first = import_folder(photo_tree, chunk_size=3)
    assert first.imported == 5
    assert first.duplicates == 1
    assert sorted(f.rsplit("/", 1)[-1] for f, _ in first.failed) == ["broken.jpg", "notes.png"]
    assert all(reason for _, reason in first.failed)
    # Fruit, Apple, Granny-Smith, Pink-Lady, Avocado, Packages, Milk
    assert first.categories_added == 7
    assert _counts() == (5, 5, 7)

    with unit_of_work() as s:
        rows = s.execute(
            select(Product.title, Category.path, Product.status)
            .join(Category, Product.category_id == Category.id)
            .order_by(Product.title)
        ).all()
    assert ("a1", "Fruit > Apple > Granny-Smith", ProductStatus.ACCEPTED) in rows
    assert ("v1", "Fruit > Avocado", ProductStatus.ACCEPTED) in rows or (
        "copy-of-v1", "Fruit > Avocado", ProductStatus.ACCEPTED) in rows

    second = import_folder(photo_tree)
    assert (second.imported, second.duplicates, second.categories_added) == (0, 6, 0)
    assert len(second.failed) == 2
    assert _counts() == (5, 5, 7)

    stored = list((catalog_home / "media").rglob("*.jpg"))
    assert len(stored) == 5


def test_import_missing_folder_names_the_problem(catalog_home, tmp_path):
    migrate.upgrade()
    with pytest.raises(ImportFolderError, match="is not a folder"):
        import_folder(tmp_path / "nope")


@pytest.mark.slow
def test_import_shared_grocery_train(catalog_home, shared_data):
    migrate.upgrade()
    summary = import_folder(shared_data / "train", chunk_size=256)
    assert (summary.imported, len(summary.failed)) == (2640, 0)
    with unit_of_work() as s:
        leaves = s.scalars(
            select(Category.path).where(~Category.id.in_(select(Category.parent_id).where(Category.parent_id.is_not(None))))
        ).all()
        assert len(leaves) == 81
        assert "Fruit > Apple > Granny-Smith" in leaves and "Fruit > Avocado" in leaves
        per_leaf = dict(
            s.execute(
                select(Category.path, func.count(Product.id)).join(Product).group_by(Category.path)
            ).all()
        )
    assert per_leaf["Fruit > Avocado"] == len(list((shared_data / "train/Fruit/Avocado").glob("*.jpg")))
    again = import_folder(shared_data / "train", chunk_size=256)
    assert (again.imported, again.duplicates) == (0, 2640)


def test_an_import_chunk_that_lost_a_lock_race_is_imported_again_and_counted_once(
    catalog_home, photo_tree, monkeypatch
):
    import contextlib
    import sqlite3

    from sqlalchemy.exc import DBAPIError

    import catalog_ai.jobs.folder_import as jobs
    from catalog_ai.db import retry

    migrate.upgrade()
    monkeypatch.setattr(retry.time, "sleep", lambda _s: None)
    real = jobs.import_labelled_files
    calls = []

    def loses_the_first_race(session, chunk, **kwargs):
        calls.append(len(chunk))
        part = real(session, chunk, **kwargs)  # every file of the chunk is ticked...
        if len(calls) == 1:  # ...then its commit's last statement loses to another writer
            raise DBAPIError("INSERT ...", {}, sqlite3.OperationalError("database is locked"))
        return part

    ticks = []

    class Bar:
        def update(self, n=1):
            ticks.append(n)

    @contextlib.contextmanager
    def bar(**_kwargs):
        yield Bar()

    monkeypatch.setattr(jobs, "import_labelled_files", loses_the_first_race)
    monkeypatch.setattr(jobs, "progress_bar", bar)
    summary = import_folder(photo_tree, chunk_size=3)
    assert calls[0] == calls[1] == 3  # the first chunk, twice
    assert (summary.imported, summary.duplicates, len(summary.failed)) == (5, 1, 2)
    assert sum(ticks) == 8  # one per file, not one per file and attempt
    assert _counts() == (5, 5, 7)
