"""The review queue read from each product's current suggestion: least confident first by the
newest suggestion (a re-classification re-orders it), filters, the exact whole-queue count and
the capped count of a filtered queue."""

from __future__ import annotations

from catalog_ai.db import ModelVersion, Product, ProductStatus, Suggestion, unit_of_work
from catalog_ai.services.review_queue import QueueFilter, queue_count, review_queue


def _suggest(session, product, model, path, confidence, source="head"):
    session.add(
        Suggestion(
            product=product,
            model_version=model,
            path=path,
            levels=[],
            confidence=confidence,
            source=source,
        )
    )
    session.flush()


def test_the_newest_suggestion_orders_and_filters_the_queue(any_catalog):
    with unit_of_work() as s:
        old, new = (
            ModelVersion(
                version=v, backbone="tiny-cnn", bundle_path=f"/m/{v}", taxonomy_fingerprint="f"
            )
            for v in ("old", "new")
        )
        s.add_all([old, new])
        products = [Product(title=t, status=ProductStatus.SUGGESTED) for t in "abcd"]
        s.add_all(products)
        s.add(Product(title="done", status=ProductStatus.ACCEPTED))
        s.flush()
        a, b, c, d = products
        _suggest(s, a, old, "Fruit > Apple", 0.10)
        _suggest(s, b, old, "Fruit > Pear", 0.20)
        _suggest(s, c, old, "Veg > Leek", 0.30, source="prototype")
        _suggest(s, d, old, "Fruitcake", 0.05)
        _suggest(s, a, new, "Fruit > Apple > Red", 0.90)  # re-classified: now the most confident
        ids = {p.title: p.id for p in products}
    with unit_of_work() as s:
        order = [i.title for i in review_queue(s)]
        fruit = [i.title for i in review_queue(s, flt=QueueFilter(branch="Fruit"))]
        by_new = [i.title for i in review_queue(s, flt=QueueFilter(model_version="new"))]
        protos = [i.title for i in review_queue(s, flt=QueueFilter(source="prototype"))]
        first = review_queue(s, limit=1)[0]
        total = queue_count(s)
        fruit_count = queue_count(s, flt=QueueFilter(branch="Fruit"))
        apple_count = queue_count(s, flt=QueueFilter(branch="Fruit > Apple"))
        page_two = [i.title for i in review_queue(s, limit=2, offset=2)]
        unknown = review_queue(s, flt=QueueFilter(model_version="nope"))
    assert order == ["d", "b", "c", "a"]
    assert fruit == ["b", "a"]  # "Fruitcake" is not inside "Fruit"
    assert by_new == ["a"] and protos == ["c"]
    assert (first.product_id, first.path, first.confidence) == (ids["d"], "Fruitcake", 0.05)
    assert total == 4  # the kept count of suggested products
    assert (fruit_count, apple_count) == (2, 1)
    assert page_two == ["c", "a"] and unknown == []


def test_a_filtered_count_stops_above_the_cap(any_catalog, monkeypatch):
    monkeypatch.setattr("catalog_ai.services.review_queue.COUNT_CAP", 3)
    with unit_of_work() as s:
        model = ModelVersion(
            version="m", backbone="tiny-cnn", bundle_path="/m/m", taxonomy_fingerprint="f"
        )
        s.add(model)
        products = [Product(title=f"p{i}", status=ProductStatus.SUGGESTED) for i in range(6)]
        s.add_all(products)
        s.flush()
        for i, p in enumerate(products):
            _suggest(s, p, model, "Fruit > Apple", 0.1 * i)
    with unit_of_work() as s:
        assert queue_count(s, flt=QueueFilter(branch="Fruit")) == 4  # "more than 3"
        assert queue_count(s) == 6  # the whole queue: exact
