"""Folder import stays inside its root and says what it skipped (issue 13, finding 9).

On main, a directory symlink to a system folder added 142 categories, and photos in the root
folder, in dot-folders and ``.avif`` files were skipped without a word.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image, features
from sqlalchemy import select

from catalog_ai.cli import cli
from catalog_ai.db import Category, ProductImage, migrate, unit_of_work
from catalog_ai.errors import ImportFolderError
from catalog_ai.jobs.folder_import import import_folder
from catalog_ai.taxonomy.folders import SKIP_OUTSIDE, scan_folder

needs_symlinks = pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")


def _photo(fmt: str = "JPEG", colour=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (24, 16), colour).save(buf, fmt)
    return buf.getvalue()


def _put(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@needs_symlinks
def test_a_folder_link_out_of_the_root_is_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    _put(root / "Fruit" / "Apple" / "a.jpg", _photo())
    outside = tmp_path / "system"
    for name in ("bin", "etc", "lib"):
        _put(outside / name / "x.jpg", _photo())
    _put(tmp_path / "elsewhere.jpg", _photo())
    os.symlink(outside, root / "System")
    os.symlink(outside, root / "Fruit" / "Deep")
    os.symlink(tmp_path / "elsewhere.jpg", root / "Fruit" / "Apple" / "link.jpg")
    scan = scan_folder(root)
    assert [n.id for n in scan.taxonomy] == ["Fruit", "Fruit > Apple"]
    assert [f for f, _ in scan.files] == [root / "Fruit" / "Apple" / "a.jpg"]
    assert sorted(f for f, r in scan.skipped if r == SKIP_OUTSIDE) == sorted(
        [root / "System", root / "Fruit" / "Deep", root / "Fruit" / "Apple" / "link.jpg"]
    )
    assert "3 links leading outside the folder (not followed)" in scan.skipped_summary()


@needs_symlinks
def test_a_link_inside_the_tree_is_followed(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    _put(root / "Veg" / "Carrot" / "c.jpg", _photo())
    os.symlink(root / "Veg" / "Carrot", root / "Orange-things")
    scan = scan_folder(root)
    assert "Orange-things" in scan.taxonomy and not scan.skipped


def test_every_skipped_file_is_counted_with_its_reason(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    _put(root / "Fruit" / "a.jpg", _photo())
    _put(root / "loose.jpg", _photo(colour=(1, 2, 3)))
    _put(root / ".thumbnails" / "t1.jpg", _photo())
    _put(root / "Fruit" / ".cache" / "deeper" / "t2.png", _photo("PNG"))
    _put(root / "Fruit" / "._a.jpg", b"\x00\x05\x16\x07")  # a macOS resource fork
    _put(root / "Fruit" / "notes.txt", b"apples")
    _put(root / "Fruit" / "iphone.HEIC", b"....ftypheic")
    scan = scan_folder(root)
    assert scan.skipped_summary() == (
        "skipped 6 files: 1 in the root folder (no category), 2 in hidden folders, "
        "1 hidden files, 2 not a photo type (.heic, .txt)"
    )
    assert (root / "loose.jpg", "in the root folder (no category)") in scan.skipped


def test_avif_is_a_photo_type_everywhere(tmp_path: Path, catalog_home: Path) -> None:
    if not features.check("avif"):
        pytest.skip("this Pillow has no AVIF codec")
    root = tmp_path / "photos"
    _put(root / "Fruit" / "a.avif", _photo("AVIF"))
    _put(root / "Fruit" / "b.jpg", _photo())
    assert len(scan_folder(root).files) == 2
    migrate.upgrade()
    summary = import_folder(root)
    assert summary.imported == 2 and not summary.failed and not summary.skipped
    with unit_of_work() as session:
        stored = sorted(Path(p).suffix for p in session.scalars(select(ProductImage.stored_path)))
    assert stored == [".avif", ".jpg"]  # never ".bin"


@needs_symlinks
def test_import_folder_cli_reports_what_it_skipped(tmp_path: Path, catalog_home: Path) -> None:
    root = tmp_path / "photos"
    _put(root / "Fruit" / "Apple" / "a.jpg", _photo())
    _put(root / "loose.jpg", _photo(colour=(9, 9, 9)))
    _put(root / ".hidden" / "h.jpg", _photo(colour=(8, 8, 8)))
    outside = tmp_path / "system"
    for i in range(5):
        _put(outside / f"dir{i}" / "x.jpg", _photo(colour=(i, 0, 0)))
    os.symlink(outside, root / "System")
    result = CliRunner().invoke(cli, ["catalog", "import-folder", str(root)])
    assert result.exit_code == 0, result.output
    assert "imported 1," in result.output
    assert (
        "skipped 3 files: 1 in the root folder (no category), 1 in hidden folders, "
        "1 links leading outside the folder (not followed)"
    ) in result.output
    assert f"skipped: {root / 'loose.jpg'}: in the root folder" in result.output
    with unit_of_work() as session:
        paths = set(session.scalars(select(Category.path)))
    assert paths == {"Fruit", "Fruit > Apple"}


def test_a_folder_with_only_skipped_photos_says_why(tmp_path: Path, catalog_home: Path) -> None:
    root = tmp_path / "photos"
    (root / "Fruit").mkdir(parents=True)
    _put(root / "loose.jpg", _photo())
    migrate.upgrade()
    with pytest.raises(ImportFolderError, match=r"1 in the root folder \(no category\)"):
        import_folder(root)
