"""A catalog of hand-made embeddings for the search tests: 16 values, one cluster per kind of
product, so that the expected neighbours are known."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from helpers import image_row
from sqlalchemy import select

from catalog_ai.db import (
    Category,
    Embedding,
    ModelVersion,
    Product,
    ProductStatus,
    dispose_engines,
    unit_of_work,
)
from catalog_ai.db.migrate import upgrade
from catalog_ai.services.catalog_import import sync_taxonomy
from catalog_ai.services.search_index import build_index
from catalog_ai.services.similar import similar_products
from catalog_ai.settings import reset_settings
from catalog_ai.taxonomy import Taxonomy

DIM = 16
VERSION = "test-model-1"
# title, category path, cluster (products of one cluster look alike)
PRODUCTS = [
    ("Tropicana Orange Juice 1L", "Packages > Juice > Orange-Juice", 0),
    ("God Morgon orange juice", "Packages > Juice > Orange-Juice", 0),
    ("Bravo apple juice 100%", "Packages > Juice > Apple-Juice", 1),
    ("Granny Smith", "Fruit > Apple > Granny-Smith", 2),
    ("Pink Lady", "Fruit > Apple > Pink-Lady", 2),
    ("Arla standard milk", "Packages > Milk", 3),
    ("Cheese_cake", "Packages > Dessert", 4),
    ("CheeseXcake", "Packages > Dessert", 4),
]
CENTRES = np.random.default_rng(42).normal(size=(5, DIM))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def any_db(request, catalog_home, monkeypatch) -> Iterator[str]:
    """A migrated, empty catalog: the embedded SQLite one, then a fresh PostgreSQL one."""
    if request.param == "postgresql":
        monkeypatch.setenv("CATALOG_AI_DATABASE_URL", request.getfixturevalue("postgres_url"))
        reset_settings()
    upgrade()
    yield request.param
    dispose_engines()


@pytest.fixture
def sqlite_db(catalog_home) -> Iterator[str]:
    upgrade()
    yield "sqlite"
    dispose_engines()


def vector(cluster: int, rng: np.random.Generator) -> np.ndarray:
    """A photo of a product of ``cluster``: cosine about 0.7 to others of its cluster."""
    return (CENTRES[cluster] + rng.normal(size=DIM) * 0.6).astype(np.float32)


def model_row(session) -> ModelVersion:
    return session.scalars(select(ModelVersion).where(ModelVersion.version == VERSION)).one()


def add_product(
    session,
    title: str,
    path: str | None,
    vectors: list[np.ndarray],
    mv: ModelVersion | None,
    *,
    tag: str,
) -> Product:
    category = session.scalar(select(Category).where(Category.path == path)) if path else None
    product = Product(title=title, status=ProductStatus.ACCEPTED, category=category)
    for i, vector in enumerate(vectors):
        image = image_row(f"{tag}-{i}", fmt="JPEG", side=10, size_bytes=100)
        product.images.append(image)
        if mv is not None:
            image.embeddings.append(Embedding.from_array(vector, model_version=mv))
    session.add(product)
    session.flush()
    return product


@pytest.fixture
def search_catalog(any_db) -> dict[str, int]:
    """The PRODUCTS with one embedding each (Granny Smith has two photos); title -> product id."""
    rng = np.random.default_rng(0)
    with unit_of_work() as session:
        sync_taxonomy(
            session, Taxonomy.from_paths(sorted({p for _, p, _ in PRODUCTS})), source="test"
        )
        mv = ModelVersion(
            version=VERSION, backbone="test", bundle_path="/nowhere", taxonomy_fingerprint="x"
        )
        session.add(mv)
        ids = {}
        for n, (title, path, cluster) in enumerate(PRODUCTS):
            photos = 2 if title == "Granny Smith" else 1
            ids[title] = add_product(
                session,
                title,
                path,
                [vector(cluster, rng) for _ in range(photos)],
                mv,
                tag=f"p{n}",
            ).id
    return ids


def build(**kwargs):
    with unit_of_work() as session:
        return build_index(session, VERSION, **kwargs)


def similar(**kwargs):
    with unit_of_work() as session:
        return similar_products(session, model_version=VERSION, **kwargs)
