"""The freezing schedule: which tiny-cnn layers train, when, and whether their BatchNorm updates.

tiny-cnn is ``Sequential(conv, bn, relu, conv, bn, relu, conv, bn, relu, pool, flatten)``: its
layer groups are the six layers with parameters, stem first.
"""

from __future__ import annotations

from types import SimpleNamespace

import lightning as L
import torch
from helpers import LEAF_PATHS
from torch.utils.data import DataLoader, TensorDataset

from catalog_ai.model.network import layer_groups
from catalog_ai.taxonomy import Taxonomy
from catalog_ai.training.freezing import FreezeSchedule
from catalog_ai.training.module import HierarchicalClassifierModule

TREE = Taxonomy.from_paths(LEAF_PATHS)
BATCHNORMS = ("1", "4", "7")  # backbone child names of the three BatchNorm layers


def _module() -> HierarchicalClassifierModule:
    torch.manual_seed(0)
    return HierarchicalClassifierModule(backbone="tiny-cnn", taxonomy=TREE.to_dict(), lr=0.05)


def _trainable(module) -> dict[str, bool]:
    return {name: p.requires_grad for name, p in module.network.backbone.named_parameters()}


def _bn_training(module) -> dict[str, bool]:
    return {name: module.network.backbone.get_submodule(name).training for name in BATCHNORMS}


def test_tiny_cnn_layer_groups_are_its_layers_stem_first():
    backbone = _module().network.backbone
    assert layer_groups(backbone) == [
        ["0.weight"],
        ["1.weight", "1.bias"],
        ["3.weight"],
        ["4.weight", "4.bias"],
        ["6.weight"],
        ["7.weight", "7.bias"],
    ]


def test_first_k_groups_are_frozen_and_their_batchnorm_stays_in_eval_mode():
    module = _module()
    schedule = FreezeSchedule(frozen_groups=2)  # conv 0 and bn 1
    schedule.on_fit_start(SimpleNamespace(current_epoch=0), module)
    assert _trainable(module) == {
        "0.weight": False,
        "1.weight": False,
        "1.bias": False,
        "3.weight": True,
        "4.weight": True,
        "4.bias": True,
        "6.weight": True,
        "7.weight": True,
        "7.bias": True,
    }
    assert all(p.requires_grad for p in module.network.head.parameters())
    for epoch in range(3):
        module.train()  # what a trainer may do between epochs
        schedule.on_train_epoch_start(SimpleNamespace(current_epoch=epoch), module)
        assert _bn_training(module) == {"1": False, "4": True, "7": True}


def test_warmup_freezes_the_whole_backbone_then_unfreezes_all_but_the_frozen_groups():
    module = _module()
    schedule = FreezeSchedule(frozen_groups=1, warmup_epochs=2)
    schedule.on_fit_start(SimpleNamespace(current_epoch=0), module)
    for epoch in (0, 1):
        schedule.on_train_epoch_start(SimpleNamespace(current_epoch=epoch), module)
        assert not any(_trainable(module).values())
        assert _bn_training(module) == {"1": False, "4": False, "7": False}
        assert all(p.requires_grad for p in module.network.head.parameters())
    schedule.on_train_epoch_start(SimpleNamespace(current_epoch=2), module)
    trainable = _trainable(module)
    assert trainable.pop("0.weight") is False and all(trainable.values())
    # Only the stem conv is frozen; every BatchNorm trains again (none is in a frozen group).
    assert _bn_training(module) == {"1": True, "4": True, "7": True}


class _Record(L.Callback):
    """Per training epoch: the BatchNorm modes seen by the first training batch."""

    def __init__(self):
        self.modes: list[dict[str, bool]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 0:
            self.modes.append(_bn_training(pl_module))


def _fit(module, schedule, *, epochs: int) -> _Record:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=g)
    rows = torch.tensor([TREE.node_index[LEAF_PATHS[i % 4]] for i in range(16)])
    loader = DataLoader(TensorDataset(images, rows), batch_size=8)
    record = _Record()
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        callbacks=[schedule, record],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, train_dataloaders=loader, val_dataloaders=loader)
    return record


def test_frozen_layers_and_their_statistics_do_not_change_in_a_real_fit():
    module = _module()
    before = {k: v.clone() for k, v in module.network.backbone.state_dict().items()}
    _fit(module, FreezeSchedule(frozen_groups=4), epochs=2)
    after = module.network.backbone.state_dict()
    unchanged = {k for k in before if torch.equal(before[k], after[k])}
    # Groups 0-3 (conv 0, bn 1, conv 3, bn 4) with bn running statistics stay as they were.
    for key in (
        "0.weight",
        "1.weight",
        "1.bias",
        "1.running_mean",
        "1.running_var",
        "3.weight",
        "4.weight",
        "4.bias",
        "4.running_mean",
        "4.running_var",
    ):
        assert key in unchanged, key
    for key in ("6.weight", "7.weight", "7.running_mean"):
        assert key not in unchanged, key


def test_batchnorm_trains_again_after_warmup_in_a_real_fit():
    module = _module()
    record = _fit(module, FreezeSchedule(frozen_groups=0, warmup_epochs=1), epochs=3)
    assert record.modes == [
        {"1": False, "4": False, "7": False},  # warm-up: the whole backbone is frozen
        {"1": True, "4": True, "7": True},
        {"1": True, "4": True, "7": True},
    ]
