from __future__ import annotations

import zipfile

import pytest

from catalog_ai.datasets import fetch as datasets
from catalog_ai.errors import DatasetError


def test_local_copy_is_used_in_place(tmp_path):
    (tmp_path / "train" / "Fruit").mkdir(parents=True)
    (tmp_path / "val").mkdir()
    assert datasets.fetch_grocery_store(from_dir=tmp_path) == tmp_path


def test_local_copy_with_wrong_layout_is_refused(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(DatasetError, match="missing val/"):
        datasets.fetch_grocery_store(from_dir=tmp_path)


def test_offline_without_copy_names_the_fix(catalog_home):
    with pytest.raises(DatasetError, match="--from DIR"):
        datasets.fetch_grocery_store()


def test_extraction_never_takes_the_test_split(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for rel in (
            "train/Fruit/Kiwi/Kiwi_001.jpg",
            "val/Fruit/Kiwi/Kiwi_002.jpg",
            "test/Fruit/Kiwi/Kiwi_003.jpg",
            "test.txt",
            "train.txt",
            "classes.csv",
            "iconic-images-and-descriptions/Fruit/Kiwi/Kiwi_Iconic.jpg",
        ):
            zf.writestr(f"GroceryStoreDataset-master/dataset/{rel}", b"x")
        zf.writestr("GroceryStoreDataset-master/README.md", b"x")
    dest = tmp_path / "out"
    datasets._extract_public_splits(archive, dest)
    found = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert found == [
        "classes.csv",
        "iconic-images-and-descriptions/Fruit/Kiwi/Kiwi_Iconic.jpg",
        "train.txt",
        "train/Fruit/Kiwi/Kiwi_001.jpg",
        "val/Fruit/Kiwi/Kiwi_002.jpg",
    ]


def test_shared_copy_is_found_beside_the_checkout(tmp_path):
    repo = tmp_path / "main"
    (repo / "sub").mkdir(parents=True)
    (tmp_path / "shared" / "datasets" / "grocery-store" / "train").mkdir(parents=True)
    assert (
        datasets.find_local_grocery_store(repo / "sub")
        == tmp_path / "shared" / "datasets" / "grocery-store"
    )
