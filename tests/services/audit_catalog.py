"""A hand-made catalog for the audit and live-precision tests: one model version, products it
auto-accepted (some audited) and products it sent to review, rows written directly."""

from __future__ import annotations

from helpers import image_row
from sqlalchemy import select

from catalog_ai.db import Category, ModelVersion, Product, ProductStatus, Suggestion
from catalog_ai.services.catalog_import import sync_taxonomy
from catalog_ai.taxonomy import Taxonomy

PATHS = ["Fruit > Apple", "Fruit > Banana", "Veg > Carrot"]


def add_version(s, name: str = "m1", *, active: bool = False) -> ModelVersion:
    if not s.scalar(select(Category.id).limit(1)):
        sync_taxonomy(s, Taxonomy.from_paths(PATHS), source="import:test")
    mv = ModelVersion(
        version=name,
        backbone="tiny",
        bundle_path=f"/{name}",
        taxonomy_fingerprint="f",
        is_active=active,
        metrics={"held_out": {"leaf_accuracy": 0.9}},
    )
    s.add(mv)
    s.flush()
    return mv


def add_product(s, mv: ModelVersion, title: str, path: str, confidence: float, *, auto: bool):
    """A product ``mv`` suggested ``path`` for: accepted by the model when ``auto``, else
    waiting for review."""
    cat = s.scalar(select(Category.id).where(Category.path == path))
    p = Product(
        title=title,
        status=ProductStatus.ACCEPTED if auto else ProductStatus.SUGGESTED,
        category_id=cat if auto else None,
        label_source="model" if auto else None,
    )
    p.images.append(image_row(title + "x"))  # "x": p1 and p10 padded alike otherwise
    s.add(p)
    s.flush()
    s.add(
        Suggestion(
            product_id=p.id,
            model_version_id=mv.id,
            category_id=cat,
            path=path,
            levels=[],
            confidence=confidence,
            source="head",
        )
    )
    s.flush()
    return p.id
