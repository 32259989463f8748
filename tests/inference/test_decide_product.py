"""A product's decision from several photos (Predictor.decide_product), on the trained bundle."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from helpers import LEAF_COLOURS, write_photo

from catalog_ai.inference.analysis import Analysis
from catalog_ai.inference.predictor import Predictor
from catalog_ai.inference.products import predict_products
from catalog_ai.model.photo_fusion import PhotoFusion


@pytest.fixture(scope="module")
def predictor(trained_bundle) -> Predictor:
    return Predictor.load(trained_bundle.path, batch_size=2)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list:
    folder = tmp_path_factory.mktemp("product-photos")
    colours = list(LEAF_COLOURS.values())
    return [
        write_photo(folder / f"p{k}.png", colours[k % len(colours)], np.random.default_rng(k))
        for k in range(4)
    ]


def _analysis(predictor: Predictor, photos) -> Analysis:
    return predictor.analyse([predictor.prepare(p) for p in photos])


def test_one_photo_is_decided_as_the_photo_is(predictor, photos):
    analysis = _analysis(predictor, photos[:2])
    assert predictor.decide_product(analysis, [1]) == predictor.decide(analysis, 1)


def test_several_photos_are_decided_on_their_mean_distribution(predictor, photos):
    analysis = _analysis(predictor, photos[:3])
    assert analysis.class_probs is not None
    mean = analysis.class_probs.mean(axis=0)
    node_probs = predictor.tree.node_probs(torch.from_numpy(mean[None]))[0].numpy()
    decision = predictor.decide_product(analysis, [0, 1, 2])
    expected = predictor.decider.decide(node_probs, open_set=decision.open_set)
    assert (decision.path, decision.leaf_path) == (expected.path, expected.leaf_path)
    assert decision.confidence == pytest.approx(expected.confidence)
    assert decision.leaf_confidence == pytest.approx(float(mean.max()))
    assert decision.model_version == predictor.version


def test_class_probs_are_the_distribution_the_node_probs_come_from(predictor, photos):
    analysis = _analysis(predictor, photos[:2])
    assert analysis.class_probs is not None
    assert np.allclose(analysis.class_probs.sum(axis=1), 1.0)
    again = predictor.tree.node_probs(torch.from_numpy(analysis.class_probs)).numpy()
    assert np.allclose(again, analysis.node_probs)


@pytest.mark.parametrize(("far", "flagged"), [([True, False], True), ([True, False, False], False)])
def test_a_product_is_possibly_new_when_at_least_half_its_photos_are(
    predictor, photos, far, flagged
):
    analysis = _analysis(predictor, photos[: len(far)])
    analysis = dataclasses.replace(analysis, open_set=np.array(far))
    assert predictor.decide_product(analysis, range(len(far))).open_set is flagged


def test_the_most_confident_rule_keeps_that_photos_decision(predictor, photos, monkeypatch):
    analysis = _analysis(predictor, photos[:3])
    assert analysis.class_probs is not None
    best = int(np.argmax(analysis.class_probs.max(axis=1)))
    monkeypatch.setattr(predictor, "photo_fusion", PhotoFusion("most_confident"))
    assert predictor.decide_product(analysis, [0, 1, 2]) == predictor.decide(analysis, best)


def test_analysing_embeddings_gives_what_analysing_the_photos_gives(predictor, photos):
    analysis = _analysis(predictor, photos[:3])
    again = predictor.analyse_embeddings(analysis.embeddings)
    assert np.allclose(again.node_probs, analysis.node_probs, atol=1e-6)


def test_predict_products_batches_across_products_and_isolates_a_bad_photo(predictor, photos):
    out = predict_products(
        predictor, [[photos[0], b"not a photo", photos[1]], [photos[2]], [b"", b"nope"]]
    )
    first, second, dead = out
    assert first.decision is not None and first.photos_used == 2
    assert first.photos[1].error and first.photos[1].embedding is None
    expected = predictor.decide_product(_analysis(predictor, [photos[0], photos[1]]), [0, 1])
    assert first.decision.path == expected.path
    assert first.decision.confidence == pytest.approx(expected.confidence, abs=1e-6)
    (alone,) = predictor.predict([photos[2]])
    assert alone.decision is not None and second.decision is not None
    # Batched with another product's photo: the same decision up to float rounding.
    assert second.decision.path == alone.decision.path
    assert second.decision.confidence == pytest.approx(alone.decision.confidence, abs=1e-6)
    assert dead.decision is None and dead.photos_used == 0
    assert dead.error is not None and "none of the 2 photos could be used" in dead.error
