"""The classifier network: a plugin backbone and one linear layer over the tree's leaves."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["HierarchicalClassifier", "layer_groups"]


class HierarchicalClassifier(nn.Module):
    """``(B, 3, H, W)`` → ``(B, n_leaves)`` leaf logits; ``embed`` gives the backbone's embedding.

    Ancestors get their probabilities by summing leaves (:mod:`catalog_ai.model.hierarchy`), so one
    linear layer is the whole hierarchical head.
    """

    def __init__(
        self, backbone: nn.Module, embedding_dim: int, n_leaves: int, dropout: float = 0.2
    ):
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(embedding_dim, n_leaves)
        nn.init.normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.backbone(x)
        return out

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.dropout(embedding))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(x))


def layer_groups(network: nn.Module) -> list[list[str]]:
    """The backbone's parameters in input-to-output groups (stem, stage 1, stage 2, …).

    timm networks describe their own stages (``group_matcher``); a plugin network that wraps
    one (GeM pooling around a timm trunk) is grouped through that trunk, with its own extra
    parameters last; any other network falls back to its top-level children, with sequential
    containers (the usual "blocks") split into their elements.
    """
    matcher_owner, prefix = _find_group_matcher(network)
    if matcher_owner is not None:
        from timm.models import group_parameters

        matcher: Any = matcher_owner.group_matcher  # timm's, found by name: untyped
        grouped = group_parameters(matcher_owner, matcher(coarse=True))
        stages = [[prefix + name for name in names] for _, names in sorted(grouped.items())]
        seen = {n for g in stages for n in g}
        rest = [n for n, _ in network.named_parameters() if n not in seen]
        return [g for g in [*stages, rest] if g]
    groups: list[list[str]] = []
    for child_name, child in network.named_children():
        parts = (
            list(child.named_children())
            if isinstance(child, (nn.Sequential, nn.ModuleList))
            else [("", child)]
        )
        for part_name, part in parts:
            base = f"{child_name}.{part_name}." if part_name else f"{child_name}."
            names = [base + n for n, _ in part.named_parameters()]
            if names:
                groups.append(names)
    own = [n for n, _ in network.named_parameters(recurse=False)]
    return groups + ([own] if own else [])


def _find_group_matcher(network: nn.Module) -> tuple[nn.Module | None, str]:
    if callable(getattr(network, "group_matcher", None)):
        return network, ""
    for name, child in network.named_children():
        if callable(getattr(child, "group_matcher", None)):
            return child, f"{name}."
    return None, ""
