"""The optimizer's parameter groups (timm's weight-decay split, our learning rates)."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from helpers import LEAF_PATHS

from catalog_ai.taxonomy import Taxonomy
from catalog_ai.training.module import HierarchicalClassifierModule


def _module() -> HierarchicalClassifierModule:
    return HierarchicalClassifierModule(
        backbone="tiny-cnn",
        taxonomy=Taxonomy.from_paths(LEAF_PATHS).to_dict(),
        lr=1e-2,
        backbone_lr_scale=0.5,
        weight_decay=0.02,
        pretrained=False,
    )


def test_groups_keep_the_learning_rates_and_decay_of_the_hand_written_split():
    module = _module()
    module._trainer = SimpleNamespace(estimated_stepping_batches=10)  # what Lightning would set
    optimizer = module.configure_optimizers()["optimizer"]
    assert isinstance(optimizer, torch.optim.AdamW)
    seen: dict[int, tuple[float, float]] = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            assert id(p) not in seen, "a parameter is in two groups"
            seen[id(p)] = (group["max_lr"], group["weight_decay"])
    # Every parameter trains, once (max_lr: the peak OneCycleLR climbs to, per group).
    assert set(seen) == {id(p) for p in module.parameters()}
    for p in module.network.backbone.parameters():
        expected = (5e-3, 0.0) if p.ndim <= 1 else (5e-3, 0.02)
        assert seen[id(p)] == expected
    for p in module.network.head.parameters():  # the head decays its bias too, at the full lr
        assert seen[id(p)] == (1e-2, 0.02)
