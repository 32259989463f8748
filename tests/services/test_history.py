"""A product's story: where the products of an upload stand, a product's full history."""

from __future__ import annotations

import pytest

from catalog_ai.db import unit_of_work
from catalog_ai.services.history import CatalogViewError, product_history, product_states


def test_product_history_lists_suggestions_and_reviews(reviewed_catalog):
    with unit_of_work() as s:
        h = product_history(s, reviewed_catalog["wrong-red"])
        with pytest.raises(CatalogViewError, match="does not exist"):
            product_history(s, 10_000)
    assert (h.status, h.category_path, h.label_source) == ("accepted", "Fruit > Banana", "review")
    assert [(x.model_version, x.path, x.confidence) for x in h.suggestions] == [
        ("m1", "Fruit > Apple > Red", 0.5)
    ]
    assert [(r.reviewer, r.action, r.category_path) for r in h.reviews] == [
        ("bob", "correct", "Fruit > Banana")
    ]
    assert h.reviews[0].created_at is not None
    assert h.image_paths == ["ab/wrong-red.png"]


def test_product_states_in_the_given_order_unknown_ids_left_out(reviewed_catalog):
    with unit_of_work() as s:
        states = product_states(
            s, [reviewed_catalog["pending"], reviewed_catalog["waiting"], 99_999]
        )
    assert [(x.title, x.status, x.suggestion_path) for x in states] == [
        ("pending", "pending", None),
        ("waiting", "suggested", "Veg > Carrot"),
    ]
