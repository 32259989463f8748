"""The search index: incremental updates, growth to HNSW and a descriptor refit."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from catalog_ai.db import (
    ModelVersion,
    Product,
    unit_of_work,
)
from catalog_ai.index import DescriptorConfig, IndexConfig, read_manifest
from catalog_ai.services.search_index import build_index, index_status, update_index
from services.search_catalog import (
    CENTRES,
    VERSION,
    add_product,
    build,
    model_row,
    similar,
    vector,
)


def test_update_adds_new_photos_and_forgets_deleted_products(search_catalog):
    build()
    rng = np.random.default_rng(5)
    with unit_of_work() as session:
        mv = model_row(session)
        new_id = add_product(
            session, "Garant milk", "Packages > Milk", [vector(3, rng)], mv, tag="new"
        ).id
        status = index_status(session, VERSION)
        assert (status.n_pending, status.n_indexed, status.up_to_date) == (1, 9, False)
    assert new_id not in [h.product_id for h in similar(query_vector=CENTRES[3], k=10)]
    with unit_of_work() as session:
        status = update_index(session, VERSION)
    assert (status.n_indexed, status.n_pending, status.up_to_date) == (10, 0, True)
    assert {h.title for h in similar(query_vector=CENTRES[3], k=2)} == {
        "Garant milk",
        "Arla standard milk",
    }

    with unit_of_work() as session:
        session.delete(session.get(Product, search_catalog["Arla standard milk"]))
    # Deleted in the database: never returned, even before the index is updated.
    assert "Arla standard milk" not in [h.title for h in similar(query_vector=CENTRES[3], k=10)]
    with unit_of_work() as session:
        status = update_index(session, VERSION)
    # An exact index (this catalog is small) deletes removed vectors: no tombstones left.
    assert (status.n_indexed, status.n_dead, status.up_to_date) == (9, 0, True)
    with unit_of_work() as session:  # nothing new: no new generation written
        generation = read_manifest(Path(status.path)).generation
        update_index(session, VERSION)
        assert read_manifest(Path(status.path)).generation == generation


def test_growth_switches_to_hnsw_and_refits_the_descriptor(sqlite_db):
    rng = np.random.default_rng(1)
    with unit_of_work() as session:
        mv = ModelVersion(
            version=VERSION, backbone="test", bundle_path="/nowhere", taxonomy_fingerprint="x"
        )
        session.add(mv)
        for i in range(30):
            add_product(session, f"p{i}", None, [vector(i % 5, rng)], mv, tag=f"a{i}")
    with unit_of_work() as session:
        status = build_index(
            session,
            VERSION,
            descriptor=DescriptorConfig(dim=4, min_samples=20),
            config=IndexConfig(ann_threshold=40),
        )
    assert (status.kind, status.descriptor, status.dim) == ("exact", "pca_whiten", 4)
    with unit_of_work() as session:
        mv = model_row(session)
        for i in range(20):
            add_product(session, f"q{i}", None, [vector(i % 5, rng)], mv, tag=f"b{i}")
        status = update_index(session, VERSION)
    # 50 photos > ann_threshold 40: HNSW; the transform (fitted on 30) is kept until 2x growth.
    assert (status.kind, status.n_indexed) == ("hnsw", 50)
    assert read_manifest(Path(status.path)).transform["n_fit"] == 30
    with unit_of_work() as session:
        mv = model_row(session)
        for i in range(15):
            add_product(session, f"r{i}", None, [vector(i % 5, rng)], mv, tag=f"c{i}")
        status = update_index(session, VERSION)
    manifest = read_manifest(Path(status.path))
    assert manifest.transform["n_fit"] == 65 and status.n_indexed == 65 and status.kind == "hnsw"
    assert manifest.config["ann_threshold"] == 40  # the build's settings survive the rebuild
