"""The worker's model cache: loaded once, rebuilt for another version, and its prototype memory
kept current with few-shot additions and reviewers' corrections (SQLite, in-process)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from catalog_ai.db import (
    Category,
    Product,
    ProductStatus,
    Review,
    ReviewAction,
    migrate,
    unit_of_work,
)
from catalog_ai.inference.predictor import Predictor
from catalog_ai.media import MediaStore
from catalog_ai.prototypes import PrototypeMemory
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


def test_prototypes_follow_fewshot_additions_and_reviews(
    catalog, tmp_path, tmp_path_factory, runner
):
    photos, shared = shared_model(tmp_path_factory)
    bundle_dir = tmp_path / "bundle"
    shutil.copytree(shared.path, bundle_dir)
    embeddings = np.stack([p.embedding for p in Predictor.load(bundle_dir).predict(photos[:8])])
    labels = [LEAVES[i % len(LEAVES)] for i in range(8)]
    PrototypeMemory.from_examples(embeddings, labels, source="train").save(bundle_dir)
    activate(bundle_dir)
    with unit_of_work() as session:  # classified in-process after the commit
        [pid] = ingest_files(
            session, photos[10:11], media=MediaStore(get_settings().media_dir), dispatcher=runner
        ).created
    runner.drain()
    _, predictor = model_cache.current()
    carrots = predictor.prototypes.count("Veg > Carrot")

    with unit_of_work() as session:  # a reviewer files the product under Veg > Carrot
        product = session.get(Product, pid)
        category = session.scalar(select(Category).where(Category.path == "Veg > Carrot"))
        product.status, product.label_source, product.category_id = (
            ProductStatus.ACCEPTED,
            "review",
            category.id,
        )
        session.add(
            Review(
                product_id=pid,
                reviewer="tester",
                action=ReviewAction.CORRECT,
                category_id=category.id,
            )
        )
    _, same = model_cache.current()
    assert same is predictor and predictor.prototypes.count("Veg > Carrot") == carrots + 1

    memory = PrototypeMemory.load(bundle_dir)  # what `catalog-ai fewshot add` does
    memory.add("Veg > Pepper", embeddings[:2], source="fewshot")
    memory.save(bundle_dir)
    model_cache.current()
    assert "Veg > Pepper" in predictor.proto_only_paths
    assert predictor.prototypes.count("Veg > Carrot") == carrots + 1  # the review still counts
