"""A product's decision uses all its photos: claim, run and record on the embedded catalog with
the tiny test model (random weights: about the pipeline, not accuracy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sqlalchemy import select
from worker.support import activate, bad_files

from catalog_ai.db import Embedding, Product, ProductImage, ProductStatus, Suggestion, unit_of_work
from catalog_ai.inference.predictor import Predictor
from catalog_ai.model.photo_fusion import fuse_photos
from catalog_ai.photos.store import MediaStore
from catalog_ai.services.classify import claim, record, run_model
from catalog_ai.worker.pipeline import classify_chunk
from services.classify_support import all_products, model_id


def add_product(media: MediaStore, files: list[Path], positions: list[int] | None = None) -> int:
    """A pending product whose photos are ``files`` (stored as given, broken ones too), with
    their shop positions; the photo rows are inserted in the order of ``files``."""
    positions = positions if positions is not None else list(range(len(files)))
    with unit_of_work() as session:
        product = Product(title="multi", status=ProductStatus.PENDING)
        session.add(product)
        session.flush()
        for file, position in zip(files, positions, strict=True):
            data = file.read_bytes()
            stored = media.put(data, image_format="PNG")
            session.add(
                ProductImage(
                    product_id=product.id,
                    content_hash=stored.content_hash,
                    stored_path=stored.relative_path,
                    width=40,
                    height=40,
                    size_bytes=len(data),
                    format="PNG",
                    position=position,
                )
            )
        session.flush()
        return product.id


def photo_ids(product_id: int) -> list[int]:
    """The product's photo ids in insertion order."""
    with unit_of_work() as session:
        return list(
            session.scalars(
                select(ProductImage.id)
                .where(ProductImage.product_id == product_id)
                .order_by(ProductImage.id)
            )
        )


def embedded(version_id: int) -> set[int]:
    with unit_of_work() as session:
        return set(
            session.scalars(
                select(Embedding.image_id).where(Embedding.model_version_id == version_id)
            )
        )


def suggestions(version_id: int) -> list[Suggestion]:
    with unit_of_work() as session:
        return list(
            session.scalars(select(Suggestion).where(Suggestion.model_version_id == version_id))
        )


@pytest.fixture
def classified(catalog, model, tmp_path):
    """(predictor, version id, photos, broken files) with the test model active."""
    photos, bundle = model
    return Predictor.load(bundle.path), model_id(activate(bundle.path)), photos, bad_files(tmp_path)


@pytest.fixture
def classified_anywhere(any_catalog, model, tmp_path):
    """``classified`` on the embedded SQLite catalog and on the real PostgreSQL."""
    photos, bundle = model
    return Predictor.load(bundle.path), model_id(activate(bundle.path)), photos, bad_files(tmp_path)


def test_claim_gives_every_photo_ordered_by_position_then_id(catalog, classified):
    _, version_id, photos, _ = classified
    pid = add_product(catalog, photos[:4], positions=[2, 0, 1, 0])
    first, second, third, fourth = photo_ids(pid)
    with unit_of_work() as session:
        (work,) = claim(session, [pid], model_version_id=version_id)
    assert [p.image_id for p in work.photos] == [second, fourth, third, first]
    assert work.image_id == second  # the first photo the shop shows


def test_a_broken_photo_fails_alone_and_the_product_is_decided_on_the_others(catalog, classified):
    predictor, version_id, photos, broken = classified
    pid = add_product(catalog, [photos[0], broken["corrupt"], photos[1]])
    good_a, bad, good_b = photo_ids(pid)
    with unit_of_work() as session:
        work = claim(session, [pid], model_version_id=version_id)
    (outcome,) = run_model(predictor, work, media=catalog)
    assert outcome.error is None and outcome.decision is not None
    assert outcome.photos_used == 2 and outcome.photos_total == 3
    assert set(outcome.photo_errors) == {bad} and outcome.photo_errors[bad]
    assert set(outcome.embeddings) == {good_a, good_b}

    # The decision is the two good photos' distributions fused, not the first photo's.
    analysis = predictor.analyse([predictor.prepare(photos[0]), predictor.prepare(photos[1])])
    assert analysis.class_probs is not None
    fused = fuse_photos(analysis.class_probs, predictor.photo_fusion.rule)
    node_probs = predictor.tree.node_probs(torch.from_numpy(fused[None]))[0].numpy()
    expected = predictor.decider.decide(node_probs)
    assert outcome.decision.path == expected.path
    assert outcome.decision.confidence == pytest.approx(expected.confidence, abs=1e-5)
    assert outcome.decision.leaf_confidence == pytest.approx(float(fused.max()), abs=1e-5)

    with unit_of_work() as session:
        done = record(session, [outcome], model_version_id=version_id)
    assert done.suggested + done.accepted == [pid]
    (suggestion,) = suggestions(version_id)
    assert suggestion.product_id == pid and suggestion.confidence == pytest.approx(
        expected.confidence, abs=1e-5
    )
    assert embedded(version_id) == {good_a, good_b}  # one embedding per photo used
    assert all_products()[pid].error is None
    assert done.new_embeddings and done.new_embeddings[0][0] == pid


def test_a_product_whose_photos_all_fail_fails_with_every_reason(catalog, classified):
    predictor, version_id, _, broken = classified
    pid = add_product(catalog, [broken["corrupt"], broken["not_an_image"]])
    with unit_of_work() as session:
        work = claim(session, [pid], model_version_id=version_id)
        missing = work[0].photos[1].stored_path
    catalog.path(missing).unlink()
    (outcome,) = run_model(predictor, work, media=catalog)
    assert outcome.decision is None and not outcome.embeddings
    assert outcome.error is not None and "none of the 2 photos could be used" in outcome.error
    assert "missing from the media store" in outcome.error  # the second photo's reason
    assert len(outcome.photo_errors) == 2
    with unit_of_work() as session:
        done = record(session, [outcome], model_version_id=version_id)
    assert done.failed == [pid]
    product = all_products()[pid]
    assert product.status == ProductStatus.FAILED and product.error == outcome.error
    assert not suggestions(version_id) and not embedded(version_id)


def test_a_single_photo_product_is_decided_as_before(catalog, classified):
    predictor, version_id, photos, _ = classified
    pid = add_product(catalog, [photos[2]])
    (image,) = photo_ids(pid)
    with unit_of_work() as session:
        work = claim(session, [pid], model_version_id=version_id)
    (outcome,) = run_model(predictor, work, media=catalog)
    (alone,) = predictor.predict([photos[2]])
    assert alone.decision is not None and outcome.decision is not None
    assert outcome.decision.to_dict() == alone.decision.to_dict()
    assert outcome.image_id == image and outcome.photos_used == 1 and not outcome.photo_errors
    assert alone.embedding is not None and outcome.embedding is not None
    assert np.allclose(outcome.embedding, alone.embedding, atol=1e-5)


def test_the_worker_pipeline_records_one_suggestion_per_multi_photo_product(
    any_catalog, classified_anywhere
):
    _, version_id, photos, broken = classified_anywhere
    three = add_product(any_catalog, [photos[3], broken["corrupt"], photos[4]])
    one = add_product(any_catalog, [photos[5]])
    dead = add_product(any_catalog, [broken["not_an_image"]])
    summary = classify_chunk([three, one, dead], media=any_catalog)
    assert summary.failed == 1 and summary.suggested + summary.accepted == 2
    assert sorted(s.product_id for s in suggestions(version_id)) == [three, one]
    suggested = next(s for s in suggestions(version_id) if s.product_id == three)
    assert suggested.model_version_id == version_id  # the suggestion names its model
    good_three = {photo_ids(three)[0], photo_ids(three)[2]}
    assert embedded(version_id) == good_three | set(photo_ids(one))
    products = all_products()
    assert products[dead].status == ProductStatus.FAILED and products[dead].error
