"""The upload page (AppTest): photos with titles become products, classified off the request by
this process's background runner; refused files are shown with their reason and a retry."""

from __future__ import annotations

import threading
import time

from sqlalchemy import select

from catalog_ai.db import Product, ProductStatus, unit_of_work
from catalog_ai.worker.dispatch import default_dispatcher
from catalog_builder import png_bytes
from conftest import frame
from worker.support import hold_classification


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
    assert default_dispatcher().drain(timeout=60)  # the background runner classifies them
    at.run()  # what the page's 2-second refresh shows
    with unit_of_work() as s:
        new = {p.title: p for p in s.scalars(select(Product).where(Product.id > max(catalog.values())))}
    assert set(new) == {"Granny Smith, loose", "carrot", "notes"}
    # Classified by the active model in this process (no broker), off the request.
    assert {str(new[t].status) for t in ("Granny Smith, loose", "carrot")} <= {"suggested", "accepted"}
    assert new["notes"].status == ProductStatus.FAILED and new["notes"].error

    status = frame(at, "status", "reason")
    assert sorted(status["title"]) == ["Granny Smith, loose", "carrot", "notes"]
    assert status.set_index("title").loc["notes", "reason"] == new["notes"].error
    assert any("notes" in e.value and new["notes"].error in e.value for e in at.error)
    assert not at.file_uploader[0].value  # a fresh uploader for the next batch

    at.button(key="upload-retry").click().run()
    assert any("cannot be retried: their file was refused at upload" in s.value for s in at.success)


def test_an_upload_returns_before_its_photos_are_classified(catalog, open_app, monkeypatch):
    """The network never runs in the request (nor in its commit hook): the page answers while
    classification is held up, and the photos are classified on another thread afterwards."""
    release, threads = hold_classification(monkeypatch)
    at = open_app("upload")
    at.file_uploader[0].set_value([("carrot.png", png_bytes((30, 60, 220), 103), "image/png")]).run()
    started = time.monotonic()
    at.button(key="upload-go").click().run()
    answered = time.monotonic() - started
    try:
        assert not at.exception
        with unit_of_work() as s:
            product = s.scalar(select(Product).where(Product.title == "carrot"))
        assert product.status in {ProductStatus.PENDING, ProductStatus.PROCESSING}
        assert any("Waiting to be classified" in c.value for c in at.caption)
    finally:
        release.set()
    assert default_dispatcher().drain(timeout=60)
    assert threads and all(t is not threading.main_thread() for t in threads)
    with unit_of_work() as s:
        status = s.scalar(select(Product.status).where(Product.title == "carrot"))
    assert status in {ProductStatus.SUGGESTED, ProductStatus.ACCEPTED}, answered
