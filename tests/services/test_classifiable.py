"""The rule of which products a model version may (re)classify, on every status and label source:
its SQL form and its form for a loaded product agree, and a person's label is never eligible."""

from __future__ import annotations

import itertools

from sqlalchemy import select

from catalog_ai.db import (
    LabelSource,
    ModelVersion,
    Product,
    ProductStatus,
    Suggestion,
    unit_of_work,
)
from catalog_ai.services.classifiable import classifiable, still_classifiable

SOURCES = [None, *LabelSource]


def test_the_sql_rule_and_the_loaded_rule_agree_on_every_product(catalog):
    with unit_of_work() as s:
        model = ModelVersion(
            version="m1", backbone="tiny-cnn", bundle_path="/m1", taxonomy_fingerprint="f"
        )
        s.add(model)
        s.flush()
        for n, (status, source) in enumerate(itertools.product(ProductStatus, SOURCES)):
            s.add(Product(title=f"{status.value}-{source}-{n}", status=status, label_source=source))
        done = Product(title="done", status=ProductStatus.SUGGESTED)
        s.add(done)
        s.flush()
        s.add(
            Suggestion(
                product_id=done.id,
                model_version_id=model.id,
                path="",
                levels=[],
                confidence=0.1,
                source="abstain",
            )
        )
        s.flush()
        by_sql = set(s.scalars(select(Product.id).where(classifiable(model.id))))
        products = list(s.scalars(select(Product)))
        by_object = {p.id for p in products if still_classifiable(p) and p.id != done.id}
        eligible = {(p.status, p.label_source) for p in products if p.id in by_sql}
    assert by_sql == by_object
    # Waiting products and those a model labelled, never those a person labelled.
    waiting_or_model = {
        ProductStatus.PENDING,
        ProductStatus.PROCESSING,
        ProductStatus.SUGGESTED,
        ProductStatus.ACCEPTED,
    }
    assert eligible == {
        (status, source) for status in waiting_or_model for source in (None, LabelSource.MODEL)
    }
    assert done.id not in by_sql  # this version suggested for it already
