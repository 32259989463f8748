"""The network: EfficientNet-Lite0 trunk + GeM pooling. Imports torch; loaded only to build."""

from __future__ import annotations

import timm
import torch
from torch import nn

__all__ = ["EfficientNetLite0GeM", "GeM"]


class GeM(nn.Module):
    """Generalised-mean pooling over the spatial dimensions with a learnable exponent ``p``."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.full((1,), float(p)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The clamp keeps pow() defined (and differentiable) where activations are zero.
        return x.clamp(min=self.eps).pow(self.p).mean(dim=(-2, -1)).pow(1.0 / self.p)

    def extra_repr(self) -> str:
        return f"p={self.p.item():.3f}, eps={self.eps}"


class EfficientNetLite0GeM(nn.Module):
    """``(B, 3, H, W)`` -> ``(B, 1280)``: timm's tf_efficientnet_lite0 feature map, GeM-pooled."""

    def __init__(self) -> None:
        super().__init__()
        # No classifier and no pooling: the trunk's features are the (B, 1280, h, w) map.
        self.trunk = timm.create_model(
            "tf_efficientnet_lite0", pretrained=False, num_classes=0, global_pool=""
        )
        self.pool = GeM()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features: torch.Tensor = self.trunk.forward_features(x)  # type: ignore[operator]
        pooled: torch.Tensor = self.pool(features)
        return pooled
