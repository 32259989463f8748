"""Products as the API reads them: one in full (the newest suggestion as its row holds it, the
final label and who gave it), and the list by keyset pages with its filters."""

from __future__ import annotations

import pytest
from helpers import image_row
from sqlalchemy import select

from catalog_ai.db import Product, ProductStatus, Suggestion, dispose_engines, unit_of_work
from catalog_ai.services.products_query import (
    ProductNotFound,
    ProductQueryError,
    encode_cursor,
    list_products,
    product_detail,
    product_photo,
)
from catalog_ai.settings import reset_settings


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def shop(request, catalog_home, monkeypatch):
    """The reviewed catalog (tests/services/reviewed_catalog.py), on SQLite and on PostgreSQL."""
    if request.param == "postgresql":
        monkeypatch.setenv("CATALOG_AI_DATABASE_URL", request.getfixturevalue("postgres_url"))
        reset_settings()
    yield request.getfixturevalue("reviewed_catalog")
    dispose_engines()


def _titles(page) -> list[str]:
    return [item.title for item in page.items]


def _all(**filters) -> list[str]:
    with unit_of_work() as s:
        return _titles(list_products(s, limit=200, **filters))


def test_a_reviewed_product_in_full(shop):
    pid = shop["wrong-red"]
    with unit_of_work() as s:
        row = s.scalars(select(Suggestion).where(Suggestion.product_id == pid)).one()
        s.execute(
            Suggestion.__table__.update()
            .where(Suggestion.id == row.id)
            .values(
                levels=[[{"path": "Fruit", "probability": 0.9}]], open_set=True, memory_revision=3
            )
        )
    with unit_of_work() as s:
        d = product_detail(s, pid)
        row = s.get(Suggestion, d.decision.suggestion_id)
        assert d.decision.levels == row.levels and d.decision.confidence == row.confidence
        assert d.decision.created_at == row.created_at
    assert (d.status, d.title, d.external_id) == ("accepted", "wrong-red", None)
    assert (d.decision.path, d.decision.source, d.decision.model_version) == (
        "Fruit > Apple > Red",
        "head",
        "m1",
    )
    assert (d.decision.open_set, d.decision.memory_revision) == (True, 3)
    assert d.label.category_path == "Fruit > Banana" and d.label.label_source == "review"
    assert (d.label.reviewed_by, d.label.review_action) == ("bob", "correct")
    assert d.label.reviewed_at == d.history.reviews[-1].created_at
    assert [p.stored_path for p in d.photos] == ["ab/wrong-red.png"] == d.history.image_paths
    assert [r.reviewer for r in d.history.reviews] == ["bob"]


def test_an_imported_product_has_its_label_and_no_decision(shop):
    with unit_of_work() as s:
        pid = s.scalar(select(Product.id).where(Product.title == "imp-carrot"))
        d = product_detail(s, pid)
        pending = product_detail(s, shop["pending"])
    assert d.decision is None and d.label.label_source == "import"
    assert (d.label.category_path, d.label.reviewed_by, d.label.reviewed_at) == (
        "Veg > Carrot",
        None,
        None,
    )
    assert pending.label is None and pending.decision is None and pending.status == "pending"


def test_unknown_products_and_photos_are_not_found(shop):
    with unit_of_work() as s:
        with pytest.raises(ProductNotFound, match="does not exist"):
            product_detail(s, 10_000)
        image_id = product_detail(s, shop["waiting"]).photos[0].image_id
        assert product_photo(s, shop["waiting"], image_id).stored_path == "ab/waiting.png"
        with pytest.raises(ProductNotFound, match="has no photo"):
            product_photo(s, shop["pending"], image_id)  # another product's photo


def test_pages_walk_every_product_once_in_id_order_and_new_ones_come_last(shop):
    with unit_of_work() as s:
        every = list(s.scalars(select(Product.id).order_by(Product.id)))
    seen, cursor, pages = [], None, 0
    while True:
        with unit_of_work() as s:
            page = list_products(s, after=cursor, limit=3)
        seen += [item.product_id for item in page.items]
        pages += 1
        if pages == 2:  # a product added while the client pages
            with unit_of_work() as s:
                new = Product(title="late", status=ProductStatus.PENDING)
                new.images.append(image_row("late"))
                s.add(new)
                s.flush()
                every.append(new.id)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == every and pages == -(-len(every) // 3)


def test_filters_by_status_branch_source_and_model_version(shop):
    imported = ["imp-green-0", "imp-green-1", "imp-green-2", "imp-carrot"]
    reviewed = ["ok-green", "wrong-red", "too-deep", "junk"]
    assert _all(status="suggested") == ["waiting"]
    assert _all(status="pending") == ["pending"]
    # The final category where there is one (wrong-red became a banana), else the suggestion.
    assert _all(branch="Fruit > Apple") == [
        "imp-green-0",
        "imp-green-1",
        "imp-green-2",
        "auto-red",
        "ok-green",
        "too-deep",
    ]
    assert _all(branch="Veg") == ["imp-carrot", "waiting"]
    assert "junk" not in _all(branch="Fruit")  # rejected: in no branch, whatever was suggested
    assert _all(branch="Fruit > Apple > Gre") == []  # a path, not a prefix of a name
    assert _all(source="import") == imported
    assert _all(source="review") == reviewed
    assert _all(source="model") == ["auto-red"]
    suggested = ["auto-red", *reviewed, "waiting"]
    assert _all(source="head") == suggested == _all(model_version="m1")
    assert _all(model_version="m2") == [] == _all(source="prototype")
    assert _all(status="accepted", source="review", branch="Fruit > Apple") == [
        "ok-green",
        "too-deep",
    ]
    with unit_of_work() as s:
        summary = list_products(s, status="suggested").items[0]
    assert (summary.suggestion_path, summary.confidence, summary.model_version) == (
        "Veg > Carrot",
        0.2,
        "m1",
    )
    assert summary.first_image_id is not None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"status": "sold"}, "not one of"),
        ({"source": "oracle"}, "not one of"),
        ({"limit": 0}, "between 1 and"),
        ({"limit": 201}, "between 1 and"),
        ({"after": "not-a-cursor"}, "follow the 'next' link"),
        ({"after": encode_cursor(3)[:-2] + "!!"}, "follow the 'next' link"),
        ({"after": "eyJhZnRlciI6ICJ4In0"}, "follow the 'next' link"),  # {"after": "x"}
    ],
)
def test_bad_filters_and_cursors_are_refused_with_the_fix(shop, kwargs, message):
    with unit_of_work() as s, pytest.raises(ProductQueryError, match=message):
        list_products(s, **kwargs)
