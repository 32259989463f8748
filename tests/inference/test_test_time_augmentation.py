"""Serving options that need no retraining: test-time views (``test_time_augmentation``) and
evaluation at another input size, both as derived model versions of the session's bundle."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from catalog_ai.inference.predictor import Predictor
from catalog_ai.model.bundle import BundleError, ModelBundle, derive_bundle
from catalog_ai.model.preprocess import tta_square_size, tta_views


def test_views_are_view_major_and_mirrored():
    batch = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    assert torch.equal(tta_views(batch, 4, "none"), batch)
    flip = tta_views(batch, 4, "flip")
    assert flip.shape == (4, 3, 4, 4)
    assert torch.equal(flip[:2], batch) and torch.equal(flip[2:], batch.flip(-1))


def test_five_crops_are_the_centre_and_the_corners():
    big = torch.arange(1 * 1 * 6 * 6, dtype=torch.float32).view(1, 1, 6, 6)
    crops = tta_views(big, 4, "crops")
    assert crops.shape == (5, 1, 4, 4)
    assert torch.equal(crops[0], big[0, :, 1:5, 1:5])
    assert torch.equal(crops[1], big[0, :, :4, :4]) and torch.equal(crops[4], big[0, :, 2:, 2:])
    assert tta_views(big, 4, "flip_crops").shape == (10, 1, 4, 4)
    assert tta_square_size(260, "crops") == 297 and tta_square_size(260, "flip") == 260
    with pytest.raises(ValueError, match="test_time_augmentation"):
        tta_square_size(260, "mirror")


@pytest.fixture(scope="module")
def photos(trained_bundle):
    return sorted((trained_bundle.data / "Fruit" / "Banana").glob("*.png"))[:3]


def _derive(trained_bundle, tmp_path, **changes) -> ModelBundle:
    parent = ModelBundle.load(trained_bundle.path)
    return derive_bundle(parent, change=str(changes), out_dir=tmp_path / "derived", **changes)


def test_flip_averages_the_embeddings_of_the_photo_and_its_mirror(trained_bundle, tmp_path, photos):
    plain = Predictor.load(trained_bundle.path, freeze=False)
    derived = _derive(trained_bundle, tmp_path, test_time_augmentation="flip")
    flip = Predictor(ModelBundle.load(derived.path), freeze=False)
    squares = [plain.prepare(p) for p in photos]
    mirrored = [np.ascontiguousarray(sq[:, :, ::-1]) for sq in squares]
    emb, logits = flip.embed_logits(squares)
    e1, _ = plain.embed_logits(squares)
    e2, _ = plain.embed_logits(mirrored)
    torch.testing.assert_close(emb, (e1 + e2) / 2, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits, plain.network.head((e1 + e2) / 2), rtol=1e-5, atol=1e-5)
    # The photos are not symmetric: the view changes what the network sees.
    assert not torch.allclose(e1, e2)
    # The frozen serving graph gives the same answer.
    frozen = Predictor(ModelBundle.load(derived.path), freeze=True)
    torch.testing.assert_close(frozen.embed_logits(squares)[0], emb, rtol=1e-4, atol=1e-4)


def test_the_option_is_a_new_version_and_survives_a_reload(trained_bundle, tmp_path):
    parent = ModelBundle.load(trained_bundle.path)
    assert parent.test_time_augmentation == "none"
    derived = _derive(trained_bundle, tmp_path, test_time_augmentation="flip_crops")
    again = ModelBundle.load(derived.path)
    assert again.test_time_augmentation == "flip_crops"
    assert again.version != parent.version and again.parent["version"] == parent.version
    assert again.temperature == parent.temperature and again.image_size == parent.image_size


def test_multi_crop_prepares_a_larger_square_and_decides(trained_bundle, tmp_path, photos):
    derived = _derive(trained_bundle, tmp_path, test_time_augmentation="crops")
    predictor = Predictor(ModelBundle.load(derived.path), freeze=False)
    assert predictor.prepare(photos[0]).shape == (3, 36, 36)  # floor(32 / 0.875)
    predictions = predictor.predict(photos)
    assert all(p.error is None and p.decision is not None for p in predictions)


def test_a_higher_evaluation_size_changes_the_preprocessing(trained_bundle, tmp_path, photos):
    derived = _derive(trained_bundle, tmp_path, image_size=40)
    again = ModelBundle.load(derived.path)
    assert again.image_size == 40 and again.training["image_size"] == 32  # trained at 32
    predictor = Predictor(again, freeze=False)
    assert predictor.prepare(photos[0]).shape == (3, 40, 40)
    plain = Predictor.load(trained_bundle.path, freeze=False)
    assert plain.prepare(photos[0]).shape == (3, 32, 32)
    a = predictor.predict(photos)[0].node_probs
    b = plain.predict(photos)[0].node_probs
    assert a is not None and b is not None and not np.allclose(a, b)


def test_an_evaluation_size_out_of_range_is_refused(trained_bundle, tmp_path):
    with pytest.raises(BundleError, match="image_size"):
        _derive(trained_bundle, tmp_path, image_size=5000)
    assert not (tmp_path / "derived").exists()


def test_an_unknown_view_mode_in_a_manifest_is_refused(trained_bundle, tmp_path):
    import json
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained_bundle.path, copy)
    manifest = json.loads((copy / "bundle.json").read_text())
    manifest["test_time_augmentation"] = "mirror"
    (copy / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="test_time_augmentation"):
        ModelBundle.load(copy)
