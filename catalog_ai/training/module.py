"""The LightningModule: it orchestrates. The network lives in ``network.py``, the tree maths and
the loss in :mod:`catalog_ai.model.hierarchy`, the freezing schedule in ``freezing.py``."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig

from catalog_ai.backbones import create_backbone, get_backbone
from catalog_ai.model.hierarchy import TreeIndex, marginal_nll
from catalog_ai.model.network import HierarchicalClassifier
from catalog_ai.model.preprocess import normalise
from catalog_ai.taxonomy import Taxonomy

__all__ = ["HierarchicalClassifierModule"]


class HierarchicalClassifierModule(L.LightningModule):
    def __init__(
        self,
        *,
        backbone: str,
        taxonomy: dict,
        lr: float = 2e-3,
        backbone_lr_scale: float = 0.5,
        weight_decay: float = 0.02,
        label_smoothing: float = 0.1,
        dropout: float = 0.2,
        pct_start: float = 0.15,
        pretrained: bool = True,
        backbone_weights: str | None = None,
    ):
        super().__init__()
        # Plain data only: the checkpoint can rebuild this module without pickled objects.
        self.save_hyperparameters()
        spec = get_backbone(backbone)
        self.mean, self.std = spec.preprocessing.mean, spec.preprocessing.std
        self.taxonomy = Taxonomy.from_dict(taxonomy)
        self.tree = TreeIndex(self.taxonomy)
        net = create_backbone(backbone, pretrained=pretrained, weights=backbone_weights)
        self.network = HierarchicalClassifier(
            net, spec.embedding_dim, self.tree.n_leaves, dropout=dropout
        )
        self.network.to(memory_format=torch.channels_last)

    def forward(self, images_uint8: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.network(normalise(images_uint8, self.mean, self.std))
        return logits

    def _shared_step(self, batch, stage: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        images, rows = batch
        logits = self(images)
        mask = self.tree.target_mask(rows)
        smoothing = self.hparams["label_smoothing"] if stage == "train" else 0.0
        loss = marginal_nll(logits, mask, label_smoothing=smoothing)
        hit = mask.gather(1, logits.argmax(1, keepdim=True)).float().mean()
        self.log(f"{stage}/loss", loss, prog_bar=stage == "train", batch_size=len(rows))
        self.log(f"{stage}/leaf_acc", hit, prog_bar=True, batch_size=len(rows))
        return loss, logits, rows

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss, _, _ = self._shared_step(batch, "train")
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        from timm.optim import create_optimizer_v2, param_groups_weight_decay

        base = self.hparams["lr"] * self.hparams["backbone_lr_scale"]
        # timm's split: 1-d parameters (norm layers, biases) are not regularised towards zero.
        # It skips parameters that do not require grad; none is frozen yet here (FreezeSchedule
        # freezes in on_fit_start, after this), so the warm-up's layers are in the groups too.
        groups = param_groups_weight_decay(self.network.backbone, self.hparams["weight_decay"])
        for group in groups:
            group["lr"] = base
        groups.append(
            {
                "params": list(self.network.head.parameters()),
                "lr": self.hparams["lr"],
                "weight_decay": self.hparams["weight_decay"],
            }
        )
        optimizer = create_optimizer_v2(
            groups, opt="adamw", lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"]
        )
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=[g["lr"] for g in groups],
            total_steps=max(1, int(self.trainer.estimated_stepping_batches)),
            pct_start=self.hparams["pct_start"],
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
