"""Freezing schedule as a Lightning callback: which backbone layers train, and when.

Two knobs, both measured on the Grocery Store data (docs/BENCHMARKS.md):

- ``frozen_groups``: the first N layer groups (stem, early stages) stay frozen for the whole run.
  Early layers compute generic edges and textures that ImageNet already taught well; freezing
  them also removes their backward pass, the costliest part of a CPU training step, because they
  run at the highest resolution.
- ``warmup_epochs``: for the first epochs only the new head trains, so its random initial
  gradients do not disturb the pretrained backbone.

Frozen layers keep their BatchNorm statistics too: at the start of every epoch their BatchNorm
layers are put in eval mode, and those of trainable layers in train mode.
"""

from __future__ import annotations

from typing import cast

import lightning as L
from torch import nn

from catalog_ai.model.network import layer_groups
from catalog_ai.training.module import HierarchicalClassifierModule

__all__ = ["FreezeSchedule"]


class FreezeSchedule(L.Callback):
    def __init__(self, *, frozen_groups: int = 0, warmup_epochs: int = 0):
        self.frozen_groups = frozen_groups
        self.warmup_epochs = warmup_epochs

    def _backbone(self, pl_module: L.LightningModule) -> nn.Module:
        return cast(HierarchicalClassifierModule, pl_module).network.backbone

    def _set(self, pl_module: L.LightningModule, *, warming_up: bool) -> None:
        backbone = self._backbone(pl_module)
        groups = layer_groups(backbone)
        frozen_names = {n for g in groups[: self.frozen_groups] for n in g}
        for name, param in backbone.named_parameters():
            param.requires_grad_(not (warming_up or name in frozen_names))
        self._frozen_names = {n for n, p in backbone.named_parameters() if not p.requires_grad}

    def _fix_batchnorm(self, pl_module: L.LightningModule) -> None:
        for module_name, module in self._backbone(pl_module).named_modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                names = [f"{module_name}.{n}" for n, _ in module.named_parameters()]
                if names:
                    # Both ways: Lightning 2.x restores each module's mode after validation instead
                    # of switching the whole model to train, so a layer unfrozen after warm-up
                    # would otherwise keep the eval mode it got while frozen.
                    module.train(not all(n in self._frozen_names for n in names))

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._set(pl_module, warming_up=self.warmup_epochs > 0)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.warmup_epochs and trainer.current_epoch == self.warmup_epochs:
            self._set(pl_module, warming_up=False)
        self._fix_batchnorm(pl_module)
