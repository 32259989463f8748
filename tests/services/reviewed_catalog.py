"""A small catalog of every kind of product (imported, auto-accepted, reviewed four ways,
waiting, pending) under two model versions, for the read-only views' tests."""

from __future__ import annotations

import pytest
from helpers import image_row
from sqlalchemy import select

from catalog_ai.db import (
    Category,
    ModelVersion,
    Product,
    ProductStatus,
    Suggestion,
    migrate,
    unit_of_work,
)
from catalog_ai.services.catalog_import import sync_taxonomy
from catalog_ai.services.review import accept, correct, reject
from catalog_ai.taxonomy import Taxonomy

PATHS = ["Fruit > Apple > Green", "Fruit > Apple > Red", "Fruit > Banana", "Veg > Carrot"]


def _product(s, title, status, *, category=None, label_source=None, photo=True):
    p = Product(title=title, status=status, category_id=category, label_source=label_source)
    if photo:
        p.images.append(image_row(title))
    s.add(p)
    s.flush()
    return p


def _suggest(s, product, model, path, confidence, cats):
    s.add(
        Suggestion(
            product_id=product.id,
            model_version_id=model.id,
            category_id=cats.get(path),
            path=path,
            levels=[],
            confidence=confidence,
            source="head",
        )
    )
    s.flush()


@pytest.fixture
def reviewed_catalog(catalog_home):
    """Imported products, an auto-accepted upload, and uploads a reviewer accepts, corrects,
    accepts partially and rejects; one still waiting and one pending."""
    migrate.upgrade()
    with unit_of_work() as s:
        sync_taxonomy(s, Taxonomy.from_paths(PATHS), source="import:test")
        cats = {c.path: c.id for c in s.scalars(select(Category))}
        m1 = ModelVersion(
            version="m1",
            backbone="tiny-cnn",
            bundle_path="/x",
            taxonomy_fingerprint="f",
            is_active=True,
        )
        m2 = ModelVersion(
            version="m2", backbone="tiny-cnn", bundle_path="/y", taxonomy_fingerprint="f"
        )
        s.add_all([m1, m2])
        s.flush()
        for i in range(3):
            _product(
                s,
                f"imp-green-{i}",
                ProductStatus.ACCEPTED,
                category=cats["Fruit > Apple > Green"],
                label_source="import",
            )
        _product(
            s,
            "imp-carrot",
            ProductStatus.ACCEPTED,
            category=cats["Veg > Carrot"],
            label_source="import",
        )
        auto = _product(
            s,
            "auto-red",
            ProductStatus.ACCEPTED,
            category=cats["Fruit > Apple > Red"],
            label_source="model",
        )
        _suggest(s, auto, m1, "Fruit > Apple > Red", 0.97, cats)
        names = {}
        for title, path, conf in [
            ("ok-green", "Fruit > Apple > Green", 0.6),
            ("wrong-red", "Fruit > Apple > Red", 0.5),
            ("too-deep", "Fruit > Apple > Green", 0.4),
            ("junk", "Fruit > Banana", 0.3),
            ("waiting", "Veg > Carrot", 0.2),
        ]:
            p = _product(s, title, ProductStatus.SUGGESTED)
            _suggest(s, p, m1, path, conf, cats)
            names[title] = p.id
        names["pending"] = _product(s, "pending", ProductStatus.PENDING).id
    with unit_of_work() as s:
        accept(s, names["ok-green"], reviewer="alice")
        correct(s, names["wrong-red"], reviewer="bob", category_path="Fruit > Banana")
        accept(s, names["too-deep"], reviewer="alice", depth=2)
        reject(s, names["junk"], reviewer="bob")
    return names
