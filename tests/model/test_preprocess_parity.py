"""Serving preprocessing equals timm's own evaluation transform, for every registered backbone.

The photos are made here: noise (so that any difference in resampling or in a crop offset by
one pixel shows) at sizes whose odd and even sides exercise timm's flooring of the resized long
side and torchvision's rounding of the centre-crop offsets. No weights are needed: the networks
are built with ``pretrained=False`` only to read timm's data config from them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from timm.data import create_transform, resolve_data_config, resolve_model_data_config

from catalog_ai.backbones import get_backbone, list_backbones
from catalog_ai.model.preprocess import center_crop, data_config, normalise, square

# Every backbone the registry lists (built-in tiny ones and installed plugins alike), and two
# architectures through the generic timm adapter (one CNN, one ViT with its own crop_pct).
BACKBONES = [
    *sorted(s.name for s in list_backbones()),
    "timm:resnet18",
    "timm:vit_tiny_patch16_224",
]

SIZES = [(317, 241), (241, 317), (500, 499), (64, 64), (1001, 750), (23, 37)]


def _photo(size: tuple[int, int], seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _timm_config(name: str) -> dict:
    """timm's data config of the backbone: from the network itself when it is a timm model
    (its ``pretrained_cfg``), else from the plugin's declared preprocessing."""
    spec = get_backbone(name)
    model = spec.build(False)
    if getattr(model, "pretrained_cfg", None):
        return resolve_model_data_config(model)
    return resolve_data_config(pretrained_cfg=data_config(spec.preprocessing))


def _served(img: Image.Image, cfg: dict) -> torch.Tensor:
    """What serving feeds the network: ``square`` (the predictor's ``prepare``), then the
    batch's centre crop and normalisation (the predictor's ``embed_logits``)."""
    size = cfg["input_size"][-1]
    sq = square(img, size, cfg["interpolation"], crop_pct=cfg["crop_pct"])
    batch = torch.from_numpy(np.ascontiguousarray(sq.transpose(2, 0, 1)))[None]
    return normalise(center_crop(batch, size), cfg["mean"], cfg["std"])[0]


@pytest.mark.parametrize("name", BACKBONES)
def test_the_backbone_declares_timms_data_config(name):
    # The preprocessing the registry hands out is what timm says for that network.
    pre = get_backbone(name).preprocessing
    cfg = _timm_config(name)
    assert cfg["input_size"] == (3, pre.input_size, pre.input_size)
    assert cfg["interpolation"] == pre.interpolation
    assert cfg["crop_pct"] == pytest.approx(pre.crop_pct)
    np.testing.assert_allclose(cfg["mean"], pre.mean)
    np.testing.assert_allclose(cfg["std"], pre.std)


@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize("serving_crop", [None, 1.0], ids=["backbone-crop", "bundle-default"])
def test_serving_input_equals_timms_eval_transform(name, serving_crop):
    cfg = _timm_config(name)
    if serving_crop is not None:  # bundles default to eval_crop_pct=1.0 (the whole photo)
        cfg = {**cfg, "crop_pct": serving_crop}
    reference = create_transform(**cfg, is_training=False)
    for i, size in enumerate(SIZES):
        img = _photo(size, seed=i)
        expected = reference(img)
        got = _served(img, cfg)
        assert got.shape == expected.shape, (size, got.shape, expected.shape)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5, msg=f"photo {size}")


def test_the_predictor_serves_timms_eval_transform(trained_bundle):
    from catalog_ai.inference.predictor import Predictor

    predictor = Predictor.load(trained_bundle.path, freeze=False)
    bundle = predictor.bundle
    cfg = data_config(
        bundle.preprocessing, image_size=bundle.image_size, crop_pct=bundle.eval_crop_pct
    )
    reference = create_transform(**cfg, is_training=False)
    for i, size in enumerate(SIZES):
        img = _photo(size, seed=10 + i)
        batch = torch.from_numpy(predictor.square(img))[None]
        got = normalise(center_crop(batch, bundle.image_size), cfg["mean"], cfg["std"])[0]
        torch.testing.assert_close(got, reference(img), rtol=0, atol=1e-5, msg=f"photo {size}")


def test_the_training_evaluation_cache_holds_what_serving_sees(tmp_path):
    # Held-out photos (calibration) and the linear probe's photos come from this cache.
    from catalog_ai.training.data import DecodedCache, Example, PlainDataset

    files = []
    for i, size in enumerate(SIZES[:4]):
        path = tmp_path / f"p{i}.png"
        _photo(size, seed=20 + i).save(path)
        files.append(path)
    cache = DecodedCache(tmp_path / "cache", 56, "bicubic", crop_pct=0.875)
    ok, failed = cache.add([Example(file=f, label="x") for f in files])
    assert not failed
    dataset = PlainDataset(cache, [d for _, d in ok], [0] * len(ok), image_size=56)
    reference = create_transform(
        input_size=56, interpolation="bicubic", crop_pct=0.875, is_training=False, normalize=False
    )
    for i, path in enumerate(files):
        with Image.open(path) as img:
            expected = reference(img.convert("RGB"))
        assert torch.equal(dataset[i][0], expected), path.name
