"""Descriptor transforms: unit outputs, whitening, fallback for small catalogs, safe round trip."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from catalog_ai.index import (
    DescriptorConfig,
    DescriptorTransform,
    SearchError,
    fit_descriptor_transform,
    l2_normalise,
)


def _features(n: int = 400, dim: int = 24, seed: int = 0) -> np.ndarray:
    """Positive, correlated, unnormalised features like a CNN's pooled activations."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(dim, dim))
    return np.abs(rng.normal(size=(n, dim)) @ mixing + 3.0).astype(np.float32)


def test_l2_gives_unit_vectors_whose_inner_product_is_cosine():
    x = _features(10)
    t = fit_descriptor_transform(x, DescriptorConfig(kind="l2"))
    d = t.apply(x)
    assert np.allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-5)
    cosine = x[0] @ x[1] / np.linalg.norm(x[0]) / np.linalg.norm(x[1])
    assert d[0] @ d[1] == pytest.approx(cosine, abs=1e-5)
    assert np.array_equal(l2_normalise(np.zeros((1, 3))), np.zeros((1, 3)))  # no NaN


def test_full_whitening_decorrelates_the_catalog():
    x = _features()
    t = fit_descriptor_transform(
        x, DescriptorConfig(kind="pca_whiten", dim=8, power=1.0, eps=0.0, min_samples=10)
    )
    assert (t.kind, t.dim, t.input_dim) == ("pca_whiten", 8, 24)
    projected = (l2_normalise(x) - t.mean) @ t.components * t.scales  # before the final L2
    assert np.allclose(np.cov(projected.T, bias=True), np.eye(8), atol=1e-3)
    assert np.allclose(np.linalg.norm(t.apply(x), axis=1), 1.0, atol=1e-5)


def test_pca_falls_back_to_centring_on_a_small_catalog():
    x = _features(50)
    t = fit_descriptor_transform(x, DescriptorConfig(kind="pca_whiten", dim=8, min_samples=100))
    assert t.kind == "center_l2" and t.components is None and t.dim == 24
    assert np.allclose(t.mean, l2_normalise(x).mean(0), atol=1e-6)


def test_dim_is_capped_by_the_number_of_photos():
    t = fit_descriptor_transform(_features(20), DescriptorConfig(dim=64, min_samples=2))
    assert t.dim == 19


def test_round_trip_is_exact_and_needs_no_pickle(tmp_path):
    x = _features()
    t = fit_descriptor_transform(
        x, DescriptorConfig(kind="pca_whiten", dim=6, power=0.5, eps=0.1, min_samples=10)
    )
    path = t.save(tmp_path / "transform.npz")
    with zipfile.ZipFile(path) as zf:  # every member is a plain .npy array
        for name in zf.namelist():
            header = zf.read(name)[:200]
            assert b"'descr': '|O'" not in header and b"object" not in header
    back = DescriptorTransform.load(path)
    assert (back.kind, back.dim, back.input_dim, back.info) == (t.kind, t.dim, t.input_dim, t.info)
    assert np.array_equal(back.apply(x), t.apply(x))
    assert back.params() == t.params()


def test_a_wrong_width_or_nan_query_is_a_clear_error():
    t = fit_descriptor_transform(_features(), DescriptorConfig(kind="center_l2"))
    with pytest.raises(SearchError, match="expects vectors of 24 values"):
        t.apply(np.ones(10))
    with pytest.raises(SearchError, match="NaN"):
        t.apply(np.full(24, np.nan))


def test_an_unreadable_transform_file_names_the_fix(tmp_path):
    bad = tmp_path / "transform.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(SearchError, match="catalog-ai index build"):
        DescriptorTransform.load(bad)


def test_bad_settings_are_refused():
    with pytest.raises(SearchError, match="unknown"):
        DescriptorConfig(kind="pca")  # type: ignore[arg-type]
    with pytest.raises(SearchError, match="out of range"):
        DescriptorConfig(dim=0)
