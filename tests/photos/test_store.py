from __future__ import annotations

import hashlib

import pytest

from catalog_ai.errors import CatalogAIError
from catalog_ai.photos.store import MediaStore


def test_put_is_content_addressed_and_idempotent(tmp_path):
    store = MediaStore(tmp_path / "media")
    data = b"\xff\xd8 not really a jpeg but bytes are bytes"
    first = store.put(data, image_format="JPEG")
    second = store.put(data, image_format="JPEG")
    digest = hashlib.sha256(data).hexdigest()
    assert first.content_hash == digest
    assert first.relative_path == f"{digest[:2]}/{digest[2:4]}/{digest}.jpg"
    assert first.created and not second.created
    assert store.read(first.relative_path) == data
    # No temporary files are left behind.
    assert [p.name for p in (tmp_path / "media").rglob(".incoming-*")] == []


def test_different_bytes_different_files(tmp_path):
    store = MediaStore(tmp_path)
    a = store.put(b"a", image_format="PNG")
    b = store.put(b"b", image_format="PNG")
    assert a.relative_path != b.relative_path
    assert a.relative_path.endswith(".png")


def test_path_outside_store_refused(tmp_path):
    store = MediaStore(tmp_path / "media")
    with pytest.raises(CatalogAIError, match="outside the media store"):
        store.path("../../etc/passwd")


def test_unwritable_store_gives_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    store = MediaStore(blocker / "media")  # a file where the folder should be
    with pytest.raises(CatalogAIError, match="CATALOG_AI_MEDIA_DIR"):
        store.put(b"data", image_format="JPEG")
