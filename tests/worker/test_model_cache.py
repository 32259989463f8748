"""The worker's model cache: loaded once, rebuilt for another version, and its prototype memory
kept current with reviewers' corrections (memory revisions) and few-shot versions (SQLite,
in-process)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from catalog_ai.db import (
    Product,
    ProductStatus,
    migrate,
    unit_of_work,
)
from catalog_ai.inference.predictor import Predictor
from catalog_ai.model.prototypes import PrototypeMemory
from catalog_ai.photos.store import MediaStore
from catalog_ai.services.ingest import ingest_files
from catalog_ai.settings import get_settings
from catalog_ai.worker import model_cache
from worker.support import LEAVES, activate, make_bundle, shared_model


@pytest.fixture
def catalog(catalog_home: Path) -> Path:
    migrate.upgrade()
    return catalog_home


def test_the_predictor_is_loaded_once_and_rebuilt_for_another_version(
    catalog, tmp_path, tmp_path_factory
):
    photos, bundle = shared_model(tmp_path_factory)
    assert model_cache.current() is None  # no model yet
    activate(bundle.path)
    first_model, first = model_cache.current()
    assert model_cache.current()[1] is first and first_model.version == bundle.version
    other = make_bundle(tmp_path / "other", photos[:8], seed=3)
    activate(other.path)
    model, second = model_cache.current()
    assert model.version == other.version and second is not first


def test_prototypes_follow_reviews_and_a_fewshot_version(
    catalog, tmp_path, tmp_path_factory, runner
):
    from catalog_ai.model.bundle import ModelBundle, derive_bundle
    from catalog_ai.services.review import correct

    photos, shared = shared_model(tmp_path_factory)
    bundle_dir = tmp_path / "bundle"
    shutil.copytree(shared.path, bundle_dir)
    embeddings = np.stack([p.embedding for p in Predictor.load(bundle_dir).predict(photos[:8])])
    labels = [LEAVES[i % len(LEAVES)] for i in range(8)]
    PrototypeMemory.from_examples(embeddings, labels, source="train").save(bundle_dir)
    activate(bundle_dir)
    with unit_of_work() as session:  # classified in-process after the commit
        ids = ingest_files(
            session, photos[10:16], media=MediaStore(get_settings().media_dir), dispatcher=runner
        ).created
    runner.drain()
    with unit_of_work() as session:
        pid = session.scalar(
            select(Product.id).where(Product.id.in_(ids), Product.status == ProductStatus.SUGGESTED)
        )
    _, predictor = model_cache.current()
    carrots = predictor.prototypes.count("Veg > Carrot")
    assert predictor.memory_revision == 0

    with unit_of_work() as session:  # a reviewer files the product under Veg > Carrot
        correct(session, pid, reviewer="tester", category_path="Veg > Carrot")
    _, same = model_cache.current()
    assert same is predictor and predictor.prototypes.count("Veg > Carrot") == carrots + 1
    assert predictor.memory_revision == 1

    # What `catalog-ai fewshot add` does: a derived version with more examples, activated.
    memory = same.prototypes.copy()
    memory.add("Veg > Pepper", embeddings[:2], source="fewshot")
    derived = derive_bundle(
        ModelBundle.load(bundle_dir), change="fewshot add", prototypes=memory, memory_revision=1
    )
    activate(derived.path)
    model, served = model_cache.current()
    assert model.version == derived.version and served is not predictor
    assert "Veg > Pepper" in served.proto_only_paths and served.memory_revision == 0
    assert served.prototypes.count("Veg > Carrot") == carrots + 1  # the review still counts
