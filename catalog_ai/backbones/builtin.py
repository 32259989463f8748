"""The backbones that ship with catalog_ai itself (entry point ``builtin``).

Only ``tiny-cnn``: a three-layer convolutional network for tests and CI. It builds in
milliseconds and trains on a CPU in seconds, but it has no pretrained weights and is no good for
real catalogs; use ``efficientnet_lite0`` (plugin ``catalog-ai-efficientnet-lite``) for those.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from catalog_ai.backbones.spec import BackboneSpec, Preprocessing, WeightsSource

if TYPE_CHECKING:
    from torch import nn

__all__ = ["TINY_CNN", "backbones"]

TINY_CNN = "tiny-cnn"
_WIDTHS = (8, 16, 32)


def _build_tiny_cnn(pretrained: bool) -> nn.Module:
    # Weights "none": random initialisation is all there is, whatever ``pretrained`` says.
    del pretrained
    from torch import nn

    layers: list[nn.Module] = []
    in_channels = 3
    for width in _WIDTHS:
        layers += [
            nn.Conv2d(in_channels, width, kernel_size=3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        ]
        in_channels = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]
    return nn.Sequential(*layers)


def backbones() -> list[BackboneSpec]:
    return [
        BackboneSpec(
            name=TINY_CNN,
            build=_build_tiny_cnn,
            embedding_dim=_WIDTHS[-1],
            preprocessing=Preprocessing(input_size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
            weights=WeightsSource("none"),
            summary="3-layer CNN, random init: for tests and CI only",
        )
    ]
