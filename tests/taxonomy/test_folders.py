"""Folder trees as categories (catalog_ai.taxonomy.folders): scan_folder and its skip reasons."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from catalog_ai.errors import TaxonomyError
from catalog_ai.taxonomy import (
    FolderScan,
    format_path,
    from_folder,
    labelled_files,
    load_taxonomy,
    scan_folder,
)
from taxonomy.support import check_index_maps, error_at, touch


def test_scan_folder(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    generic = touch(root / "Fruit" / "apple-generic.JPG")  # images beside a subfolder
    touch(root / "Fruit" / "notes.txt")
    g1 = touch(root / "Fruit" / "Apple" / "Granny-Smith" / "g1.jpg")
    g2 = touch(root / "Fruit" / "Apple" / "Granny-Smith" / "g2.png")
    touch(root / "Fruit" / "Apple" / "Granny-Smith" / "._g1.jpg")  # macOS resource fork
    avo = touch(root / "Fruit" / "Avocado" / "a.webp")
    (root / "Vegetables").mkdir()
    touch(root / ".thumbnails" / "t.jpg")
    touch(root / "__pycache__" / "x.pyc")
    loose = touch(root / "loose.jpeg")
    touch(root / "README.md")

    scan = scan_folder(root)
    assert isinstance(scan, FolderScan)
    tax = scan.taxonomy
    assert [n.id for n in tax] == [
        "Fruit",
        "Fruit > Apple",
        "Fruit > Apple > Granny-Smith",
        "Fruit > Avocado",
        "Vegetables",
    ]
    assert tax.leaf_ids == ["Fruit > Apple > Granny-Smith", "Fruit > Avocado", "Vegetables"]
    check_index_maps(tax)
    assert scan.files == sorted(
        [
            (generic, ("Fruit",)),
            (g1, ("Fruit", "Apple", "Granny-Smith")),
            (g2, ("Fruit", "Apple", "Granny-Smith")),
            (avo, ("Fruit", "Avocado")),
        ]
    )
    assert scan.unlabelled == [loose]
    assert labelled_files(root) == scan.files
    assert labelled_files(root, suffixes=(".PNG",)) == [(g2, ("Fruit", "Apple", "Granny-Smith"))]
    assert from_folder(root) == tax
    shown = from_folder(root, ignore_hidden=False)
    assert ".thumbnails" in shown and "__pycache__" not in shown


def test_scan_folder_errors(tmp_path: Path) -> None:
    error_at(
        tmp_path / "nope", None, "folder not found.*subfolders are the categories", scan_folder
    )
    error_at(touch(tmp_path / "file.jpg"), None, "is a file, not a folder", from_folder)
    empty = tmp_path / "empty"
    touch(empty / "only-a-file.jpg")
    error_at(empty, None, "no subfolders", load_taxonomy)
    error_at(tmp_path / "file.jpg", None, "is a file", load_taxonomy, "folder")
    bad = tmp_path / "bad"
    touch(bad / "Fruit" / "A > B" / "x.jpg")
    with pytest.raises(TaxonomyError, match=r"contains '>'.*folder name") as info:
        scan_folder(bad)
    assert info.value.source == str(bad / "Fruit" / "A > B")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_scan_folder_symlink_loop(tmp_path: Path) -> None:
    touch(tmp_path / "A" / "B" / "x.jpg")
    os.symlink(tmp_path / "A", tmp_path / "A" / "B" / "back")
    with pytest.raises(TaxonomyError, match="symlink loop"):
        scan_folder(tmp_path)


def test_shared_grocery_tree(shared_data: Path) -> None:
    scan = scan_folder(shared_data / "train")
    tax = scan.taxonomy
    assert len(tax.leaves) == 81
    assert [n.name for n in tax if n.parent_id is None] == ["Fruit", "Packages", "Vegetables"]
    assert tax.by_path("Fruit > Apple > Granny-Smith").depth == 3
    assert tax.is_leaf("Fruit > Avocado")
    assert sum(n.depth == 2 for n in tax) == 43  # the README's 43 coarse categories
    assert len(scan.files) == 2640 and scan.unlabelled == []
    assert all(tax.is_leaf(format_path(cat)) for _, cat in scan.files)
    check_index_maps(tax)


@pytest.mark.skipif(os.name != "posix", reason="control characters in folder names")
def test_folder_names_meet_the_contract(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    touch(bad / "Fruit" / "\x1b[31mRed" / "x.jpg")
    with pytest.raises(TaxonomyError, match=r"U\+001B.*\(folder name\)") as info:
        scan_folder(bad)
    assert str(info.value).isprintable() and "\\x1b[31mRed: " in str(info.value)
