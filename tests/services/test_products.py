"""Multi-photo products (services.products.create_product): photos checked one by one, a bad one
failing alone, idempotency by external id, duplicates, labels from a feed, concurrent writers."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from sqlalchemy import func, select
from worker.support import bad_files, make_photos, png_bytes

from catalog_ai.db import (
    Category,
    LabelSource,
    Product,
    ProductImage,
    ProductStatus,
    WebhookEvent,
    unit_of_work,
)
from catalog_ai.services.catalog_import import sync_taxonomy
from catalog_ai.services.ingest import ingest_files
from catalog_ai.services.products import PhotosRefused, ProductError, create_product
from catalog_ai.services.webhooks import add_webhook
from catalog_ai.taxonomy import Taxonomy


class Recorder:
    """A dispatcher that only records what it was asked (the tests look at when and what)."""

    def __init__(self) -> None:
        self.classified: list[list[int]] = []
        self.delivered: list[list[int]] = []

    def classify(self, product_ids) -> None:
        self.classified.append(list(product_ids))

    def reclassify(self, version: str) -> None:
        raise AssertionError("not expected")

    def embed_catalogue(self, version: str) -> None:
        raise AssertionError("not expected")

    def deliver(self, delivery_ids) -> None:
        self.delivered.append(list(delivery_ids))


def _count(model) -> int:
    with unit_of_work() as session:
        return session.scalar(select(func.count()).select_from(model))


def _upload(name: str, seed: int, size: int = 40) -> tuple[str, bytes]:
    return (name, png_bytes((30 * seed % 256, 90, 160), np.random.default_rng(seed), size=size))


def test_a_product_with_several_photos_in_order_classified_after_the_commit(catalog):
    photos = [_upload("front.png", 1), _upload("back.png", 2), _upload("side.png", 3)]
    urls = ["https://shop.example/front.png", None, "https://shop.example/side.png"]
    recorder = Recorder()
    with unit_of_work() as session:
        result = create_product(
            session,
            photos,
            media=catalog,
            dispatcher=recorder,
            title="Mug",
            description="A blue mug",
            external_id="SKU-1",
            attributes={"vendor": "Acme"},
            source_urls=urls,
        )
        assert recorder.classified == []  # not before the commit
    assert recorder.classified == [[result.product_id]]
    assert result.created and result.status == "pending"
    assert [p.error for p in result.photos] == [None, None, None]
    with unit_of_work() as session:
        product = session.get(Product, result.product_id)
        assert (product.title, product.description, product.external_id) == (
            "Mug",
            "A blue mug",
            "SKU-1",
        )
        assert product.attributes == {"vendor": "Acme"} and product.status == ProductStatus.PENDING
        rows = sorted(product.images, key=lambda i: i.position)
        assert [i.position for i in rows] == [0, 1, 2]
        assert [i.id for i in rows] == [p.image_id for p in result.photos]
        assert [i.source_url for i in rows] == urls
        assert [catalog.read(i.stored_path) for i in rows] == [data for _, data in photos]


def test_a_bad_photo_fails_alone_and_the_product_keeps_the_good_ones(catalog, tmp_path):
    bad = bad_files(tmp_path / "bad")
    good = make_photos(tmp_path / "good", 2)
    big = _upload("huge.png", 5, size=200)
    files = [good[0], bad["not_an_image"], big, bad["bomb"], good[1]]
    with unit_of_work() as session:
        result = create_product(
            session, files, media=catalog, dispatcher=None, max_bytes=len(big[1]) - 1
        )
    problems = [p.problem for p in result.photos]
    # Over the byte limit, and over the pixel limit (a bomb, refused from its header): too large.
    assert problems == [None, "not_a_photo", "too_large", "too_large", None]
    assert "not an image file" in result.photos[1].error
    assert "above the" in result.photos[2].error and "limit" in result.photos[2].error
    with unit_of_work() as session:
        product = session.get(Product, result.product_id)
        assert product.title == "photo-0000"  # no title: the first photo's name
        assert sorted((i.position, i.id) for i in product.images) == [
            (0, result.photos[0].image_id),
            (1, result.photos[4].image_id),
        ]


def test_no_usable_photo_makes_one_failed_product_with_the_reasons(catalog, tmp_path):
    bad = bad_files(tmp_path / "bad")
    files = [bad["not_an_image"], bad["empty"]]
    with unit_of_work() as session:
        first = create_product(session, files, media=catalog, dispatcher=Recorder(), title="X")
    assert first.created and first.status == "failed"
    with unit_of_work() as session:
        product = session.get(Product, first.product_id)
        assert product.status == ProductStatus.FAILED and not product.images
        assert "not an image file" in product.error and "file is empty" in product.error
    with unit_of_work() as session:
        again = create_product(session, files, media=catalog, dispatcher=None, title="X")
    assert (again.product_id, again.created, again.status) == (first.product_id, False, "failed")
    assert again.photos == first.photos and _count(Product) == 1


def test_a_new_failed_product_is_announced_to_the_webhooks_after_the_commit(catalog, tmp_path):
    junk = bad_files(tmp_path / "bad")["not_an_image"]
    with unit_of_work() as session:
        add_webhook(session, "https://shop.example/hooks", "product.failed")
    recorder = Recorder()
    with unit_of_work() as session:
        failed = create_product(
            session, [junk], media=catalog, dispatcher=recorder, external_id="SKU-F"
        )
        assert recorder.delivered == []
    with unit_of_work() as session:
        again = create_product(
            session, [junk], media=catalog, dispatcher=recorder, external_id="SKU-F"
        )
        event = session.scalars(select(WebhookEvent)).one()  # none for the same request again
    assert again.product_id == failed.product_id and len(recorder.delivered) == 1
    assert event.type == "product.failed"
    data = event.payload["data"]
    assert (data["product_id"], data["external_id"]) == (failed.product_id, "SKU-F")
    assert "not an image file" in data["error"]


def test_one_refused_photo_is_the_failed_product_ingest_made_for_it(catalog, tmp_path):
    junk = bad_files(tmp_path / "bad")["not_an_image"]
    with unit_of_work() as session:
        [failed] = ingest_files(session, [junk], media=catalog, dispatcher=None).failed
    with unit_of_work() as session:
        result = create_product(session, [junk], media=catalog, dispatcher=None)
    assert (result.product_id, result.created) == (failed.product_id, False)


def test_refusing_instead_of_recording_stores_nothing(catalog, tmp_path):
    bad = bad_files(tmp_path / "bad")
    with unit_of_work() as session, pytest.raises(PhotosRefused) as caught:
        create_product(
            session,
            [bad["bomb"], bad["empty"]],
            media=catalog,
            dispatcher=None,
            external_id="SKU-2",
            keep_failed=False,
        )
    assert [p.problem for p in caught.value.photos] == ["too_large", "not_a_photo"]
    assert "bomb.png" in str(caught.value) and _count(Product) == 0


def test_the_same_external_id_again_is_the_same_product_and_the_same_answer(catalog):
    photos = [_upload("a.png", 1), _upload("b.png", 2)]
    recorder = Recorder()
    with unit_of_work() as session:
        first = create_product(
            session, photos, media=catalog, dispatcher=recorder, external_id="SKU-3", title="One"
        )
    with unit_of_work() as session:
        again = create_product(
            session,
            photos,
            media=catalog,
            dispatcher=recorder,
            external_id="SKU-3",
            title="Changed",
        )
    assert (again.product_id, again.created) == (first.product_id, False)
    assert again.photos == first.photos and again.status == first.status
    with unit_of_work() as session:
        other = create_product(
            session, [_upload("c.png", 3)], media=catalog, dispatcher=None, external_id="SKU-3"
        )
        assert session.get(Product, first.product_id).title == "One"  # nothing changed
    assert other.product_id == first.product_id and not other.created
    assert other.photos[0].image_id is None and "exists already" in other.photos[0].error
    assert recorder.classified == [[first.product_id]] and _count(ProductImage) == 2


def test_a_photo_of_another_product_is_reported_as_its_duplicate(catalog):
    shared, own = _upload("shared.png", 1), _upload("own.png", 2)
    with unit_of_work() as session:
        first = create_product(session, [shared], media=catalog, dispatcher=None)
    with unit_of_work() as session:
        second = create_product(session, [shared, own, own], media=catalog, dispatcher=None)
    assert second.created and second.product_id != first.product_id
    assert [(p.duplicate_of, p.problem) for p in second.photos] == [
        (first.product_id, "duplicate"),
        (None, None),
        (second.product_id, "duplicate"),  # the same bytes twice in one request
    ]
    # Every photo already someone's and no external id: the same photos posted again.
    with unit_of_work() as session:
        again = create_product(session, [shared], media=catalog, dispatcher=None)
    assert (again.product_id, again.created) == (first.product_id, False)
    assert again.photos[0].image_id == first.photos[0].image_id
    # With an external id it is a new product of the shop, which has no photo of its own.
    with unit_of_work() as session:
        named = create_product(session, [shared], media=catalog, dispatcher=None, external_id="N")
    assert named.created and named.status == "failed"
    assert f"already product {first.product_id}'s" in named.photos[0].error
    assert _count(ProductImage) == 2


def test_a_failed_product_is_retried_by_posting_it_again_with_usable_photos(catalog, tmp_path):
    junk = bad_files(tmp_path / "bad")["not_an_image"]
    recorder = Recorder()
    with unit_of_work() as session:
        failed = create_product(
            session, [junk], media=catalog, dispatcher=recorder, external_id="SKU-4"
        )
    with unit_of_work() as session:
        retried = create_product(
            session,
            [_upload("fixed.png", 4)],
            media=catalog,
            dispatcher=recorder,
            external_id="SKU-4",
            title="Fixed",
        )
    assert (retried.product_id, retried.created) == (failed.product_id, False)
    assert retried.status == "pending" and recorder.classified == [[failed.product_id]]
    with unit_of_work() as session:
        product = session.get(Product, failed.product_id)
        assert (product.status, product.error, product.title) == ("pending", None, "Fixed")
        assert len(product.images) == 1


def test_a_product_a_person_labelled_is_accepted_and_not_classified(catalog):
    with unit_of_work() as session:
        sync_taxonomy(session, Taxonomy.from_paths(["Fruit > Apple"]), source="test")
        category_id = session.scalar(select(Category.id).where(Category.path == "Fruit > Apple"))
    recorder = Recorder()
    with unit_of_work() as session:
        result = create_product(
            session,
            [_upload("apple.png", 7)],
            media=catalog,
            dispatcher=recorder,
            category_id=category_id,
            label_source=LabelSource.IMPORT,
        )
    assert result.status == "accepted" and recorder.classified == []
    with unit_of_work() as session:
        product = session.get(Product, result.product_id)
        assert (product.category_id, product.label_source) == (category_id, LabelSource.IMPORT)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"photos": []}, "at least one photo"),
        ({"external_id": " "}, "1 to 255 characters"),
        ({"external_id": "x" * 256}, "1 to 255 characters"),
        ({"category_id": 1}, "both a category and who gave it"),
        ({"category_id": 1, "label_source": LabelSource.MODEL}, "not a person's label"),
        ({"category_id": 999, "label_source": LabelSource.IMPORT}, "does not exist"),
        ({"source_urls": [None, None]}, "2 source urls for 1 photos"),
    ],
)
def test_requests_that_cannot_work_are_refused_with_the_fix(catalog, kwargs, message):
    args = {"photos": [_upload("a.png", 1)], **kwargs}
    with unit_of_work() as session, pytest.raises(ProductError, match=message):
        create_product(session, media=catalog, dispatcher=None, **args)


def test_concurrent_creates_with_one_external_id_make_one_product(any_catalog):
    """Writer B checks before A commits (it sees no product), then its insert meets A's row: it
    must wait for A and answer with A's product, storing nothing of its own."""
    photos = [_upload("a.png", 1), _upload("b.png", 2)]
    a_wrote, b_checked = threading.Event(), threading.Event()
    results: dict[str, object] = {}
    errors: list[BaseException] = []

    def writer_a() -> None:
        with unit_of_work() as session:
            results["a"] = create_product(
                session, photos, media=any_catalog, dispatcher=None, external_id="SKU-C"
            )
            a_wrote.set()
            b_checked.wait(10)
            time.sleep(0.3)  # B is now blocked on A's row (or about to be)

    def writer_b() -> None:
        a_wrote.wait(10)
        with unit_of_work() as session:
            assert session.scalar(select(func.count()).select_from(Product)) == 0
            b_checked.set()
            results["b"] = create_product(
                session,
                list(reversed(photos)),
                media=any_catalog,
                dispatcher=None,
                external_id="SKU-C",
            )

    def guarded(target):
        def run() -> None:
            try:
                target()
            except BaseException as exc:
                errors.append(exc)
                a_wrote.set(), b_checked.set()

        return run

    threads = [threading.Thread(target=guarded(t)) for t in (writer_a, writer_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    a, b = results["a"], results["b"]
    assert a.created and not b.created and a.product_id == b.product_id
    assert [p.image_id for p in b.photos] == [p.image_id for p in reversed(a.photos)]
    assert _count(Product) == 1 and _count(ProductImage) == 2
