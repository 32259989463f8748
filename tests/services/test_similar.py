"""Visual search: products like a photo embedding or like a stored product, with clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from catalog_ai.db import (
    ModelVersion,
    unit_of_work,
)
from catalog_ai.db.queries import ModelVersionNotFound
from catalog_ai.index import SearchError
from catalog_ai.services.similar import similar_products
from catalog_ai.settings import get_settings
from services.search_catalog import (
    CENTRES,
    DIM,
    PRODUCTS,
    VERSION,
    add_product,
    build,
    model_row,
    similar,
)


def test_similar_products_by_photo_embedding(search_catalog):
    status = build()
    assert (status.exists, status.kind, status.n_indexed, status.n_embeddings) == (
        True,
        "exact",
        9,
        9,
    )
    assert status.descriptor == "center_l2"  # 9 photos: too few to fit a PCA
    assert status.up_to_date
    hits = similar(query_vector=CENTRES[0], k=3)
    assert {h.title for h in hits[:2]} == {"Tropicana Orange Juice 1L", "God Morgon orange juice"}
    assert hits[0].score >= hits[1].score >= hits[2].score
    assert hits[0].category_path == "Packages > Juice > Orange-Juice"
    assert hits[0].image_path.startswith(str(get_settings().media_dir)) and hits[
        0
    ].image_path.endswith(".jpg")


def test_similar_to_a_product_leaves_it_out_and_counts_each_product_once(search_catalog):
    build()
    hits = similar(product_id=search_catalog["Pink Lady"], k=10)
    titles = [h.title for h in hits]
    assert "Pink Lady" not in titles
    assert titles[0] == "Granny Smith" and titles.count("Granny Smith") == 1  # two photos, one hit
    assert len(hits) == len(PRODUCTS) - 1


def test_photo_search_narrowed_by_words(search_catalog):
    build()
    hits = similar(query_vector=CENTRES[2], k=10, text="juice")  # looks like apples, must be juice
    assert {h.title for h in hits} == {
        "Tropicana Orange Juice 1L",
        "God Morgon orange juice",
        "Bravo apple juice 100%",
    }
    assert (
        similar(query_vector=CENTRES[2], k=10, text="apple juice")[0].title
        == "Bravo apple juice 100%"
    )
    assert similar(query_vector=CENTRES[2], k=10, text="no-such-words") == []


def test_clear_errors_without_embeddings_or_index(sqlite_db):
    with unit_of_work() as session:
        session.add(
            ModelVersion(version=VERSION, backbone="t", bundle_path="/x", taxonomy_fingerprint="x")
        )
    with pytest.raises(SearchError, match="catalog-ai index build after the catalog is embedded"):
        build()
    with pytest.raises(SearchError, match="no embeddings"):
        similar(query_vector=np.ones(DIM))
    with unit_of_work() as session:
        mv = model_row(session)
        pid = add_product(session, "x", None, [np.ones(DIM, np.float32)], mv, tag="x").id
    # No index on this host yet: the first search builds it from the rows.
    assert [h.product_id for h in similar(query_vector=np.ones(DIM))] == [pid]
    build()
    with pytest.raises(SearchError, match="expects vectors of 16 values"):
        similar(query_vector=np.ones(5))
    with pytest.raises(SearchError, match="exactly one"):
        similar(query_vector=np.ones(DIM), product_id=pid)
    with pytest.raises(SearchError, match="does not exist"):
        similar(product_id=pid + 100)
    with unit_of_work() as session:
        lonely = add_product(session, "no photo embedded", None, [np.ones(DIM)], None, tag="y").id
    with pytest.raises(SearchError, match="has no embedding from model"):
        similar(product_id=lonely)
    with (
        pytest.raises(ModelVersionNotFound, match="no registered model version"),
        unit_of_work() as session,
    ):
        similar_products(session, model_version="nope", query_vector=np.ones(DIM))
