"""The upload page (AppTest): photos with titles become products, classified in-process;
refused files are shown with their reason and a retry."""

from __future__ import annotations

from sqlalchemy import select

from catalog_ai.db import Product, ProductStatus, unit_of_work
from catalog_builder import png_bytes
from conftest import frame


def test_upload_classifies_and_shows_failures_with_retry(catalog, open_app):
    at = open_app("upload")
    at.file_uploader[0].set_value([
        ("green.png", png_bytes((40, 190, 40), 101), "image/png"),
        ("carrot.png", png_bytes((30, 60, 220), 102), "image/png"),
        ("notes.png", b"this is not a photo", "image/png"),
    ]).run()
    at.text_input(key="title-0-0").input("Granny Smith, loose")
    at.button(key="upload-go").click().run()
    assert not at.exception
    assert any("Uploaded 3 photos: 2 new products, 0 already in the catalog, 1 refused." in s.value
               for s in at.success)
    with unit_of_work() as s:
        new = {p.title: p for p in s.scalars(select(Product).where(Product.id > max(catalog.values())))}
    assert set(new) == {"Granny Smith, loose", "carrot", "notes"}
    # Classified by the active model in this process (no broker): none is left waiting.
    assert {str(new[t].status) for t in ("Granny Smith, loose", "carrot")} <= {"suggested", "accepted"}
    assert new["notes"].status == ProductStatus.FAILED and new["notes"].error

    status = frame(at, "status", "reason")
    assert sorted(status["title"]) == ["Granny Smith, loose", "carrot", "notes"]
    assert status.set_index("title").loc["notes", "reason"] == new["notes"].error
    assert any("notes" in e.value and new["notes"].error in e.value for e in at.error)
    assert not at.file_uploader[0].value  # a fresh uploader for the next batch

    at.button(key="upload-retry").click().run()
    assert any("cannot be retried: their file was refused at upload" in s.value for s in at.success)
