"""Fusing a product's photo distributions: each rule on tiny made-up distributions."""

from __future__ import annotations

import numpy as np
import pytest

from catalog_ai.model.photo_fusion import RULES, PhotoFusion, PhotoFusionError, fuse_photos

FRONT = [0.7, 0.2, 0.1]  # a confident photo
BACK = [0.4, 0.5, 0.1]  # an ambiguous one that leans the other way


@pytest.mark.parametrize("rule", RULES)
def test_one_photo_is_its_own_distribution_under_every_rule(rule: str) -> None:
    assert np.allclose(fuse_photos(np.array([FRONT]), rule), FRONT)


@pytest.mark.parametrize("rule", RULES)
def test_every_rule_gives_a_distribution(rule: str) -> None:
    fused = fuse_photos(np.array([FRONT, BACK, [0.1, 0.1, 0.8]]), rule)
    assert fused.shape == (3,) and np.isclose(fused.sum(), 1.0) and np.all(fused >= 0)


def test_mean_averages_the_photos() -> None:
    assert np.allclose(fuse_photos(np.array([FRONT, BACK]), "mean"), [0.55, 0.35, 0.1])


def test_product_of_experts_multiplies_and_renormalises() -> None:
    raw = np.array(FRONT) * np.array(BACK)
    fused = fuse_photos(np.array([FRONT, BACK]), "product", temperature_exponent=0.0)
    assert np.allclose(fused, raw / raw.sum())


def test_geometric_mean_is_the_product_at_temperature_n() -> None:
    raw = np.sqrt(np.array(FRONT) * np.array(BACK))
    fused = fuse_photos(np.array([FRONT, BACK]), "product", temperature_exponent=1.0)
    assert np.allclose(fused, raw / raw.sum())


def test_agreeing_photos_sharpen_under_the_product_not_under_the_mean() -> None:
    same = np.array([FRONT, FRONT])
    assert fuse_photos(same, "product", temperature_exponent=0.0)[0] > FRONT[0]
    assert np.allclose(fuse_photos(same, "mean"), FRONT)
    assert np.allclose(fuse_photos(same, "product", temperature_exponent=1.0), FRONT)


def test_the_mean_is_never_more_confident_than_the_most_confident_photo() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        probs = rng.dirichlet(np.ones(6) * 0.3, size=3)
        assert fuse_photos(probs, "mean").max() <= probs.max() + 1e-12


def test_one_photo_ruling_a_class_out_exactly_does_not_make_the_product_nan() -> None:
    fused = fuse_photos(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), "product")
    assert np.all(np.isfinite(fused)) and np.isclose(fused.sum(), 1.0)


def test_most_confident_keeps_that_photo_only() -> None:
    probs = np.array([BACK, FRONT, [0.34, 0.33, 0.33]])
    assert np.allclose(fuse_photos(probs, "most_confident"), FRONT)
    assert PhotoFusion("most_confident").chosen_photo(probs) == 1
    assert PhotoFusion("mean").chosen_photo(probs) is None


@pytest.mark.parametrize(
    "probs",
    [np.zeros((0, 3)), np.array(FRONT), np.array([[0.5, np.nan, 0.5]]), np.array([[1.5, -0.5]])],
)
def test_bad_distributions_are_refused_with_the_fix(probs: np.ndarray) -> None:
    with pytest.raises(PhotoFusionError, match="give"):
        fuse_photos(probs, "mean")


def test_an_unknown_rule_is_refused() -> None:
    with pytest.raises(PhotoFusionError, match="use one of"):
        PhotoFusion("median")
    with pytest.raises(PhotoFusionError, match="use one of"):
        fuse_photos(np.array([FRONT, BACK]), "median")
