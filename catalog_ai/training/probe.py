"""The quick model: a calibrated hierarchical head on frozen pretrained embeddings.

Each photo is embedded once (and once mirrored) by the pretrained backbone; only the linear head
over the tree's leaves is trained, on those embeddings, in seconds. On the Grocery Store data
this reaches the accuracy of logistic regression on frozen features (about 67 % leaf on val) in
a few minutes on 2 CPU cores, which is what the main job needs; the full fine-tune
(``mode="finetune"``) is the accurate model.

Both steps run in Lightning (``Trainer.predict`` for the embeddings, ``Trainer.fit`` for the
head), which puts them on the device ``accelerator`` names. scikit-learn's
``LogisticRegression`` would fit the same linear head, but not the same loss: a photo labelled at
an inner category (``Fruit > Apple``) has no single leaf to be a class of, and is trained with
the marginal likelihood of the leaves below it (:func:`marginal_nll`), with label smoothing.
"""

from __future__ import annotations

import math
from typing import NamedTuple, cast

import lightning as L
import torch
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from torch.utils.data import DataLoader, TensorDataset

from catalog_ai.model.hierarchy import marginal_nll
from catalog_ai.model.preprocess import normalise
from catalog_ai.progress import progress_bar
from catalog_ai.training.data import HierarchyDataModule, PlainDataset, balanced_weights
from catalog_ai.training.module import HierarchicalClassifierModule

__all__ = ["ProbeFit", "train_linear_probe"]

_BATCH = 16  # photos per embedding batch
_STEP = 256  # embeddings per optimizer step


class ProbeFit(NamedTuple):
    """The (unmirrored) training embeddings, their label rows, and the device the probe ran on."""

    embeddings: torch.Tensor
    rows: torch.Tensor
    device: torch.device


class _Embedder(L.LightningModule):
    """Each batch's embeddings and those of its mirror image (eval mode, no gradients)."""

    def __init__(self, module: HierarchicalClassifierModule):
        super().__init__()
        self.network = module.network
        self.mean, self.std = module.mean, module.std

    def predict_step(self, batch, batch_idx: int) -> tuple[torch.Tensor, ...]:
        images, rows = batch
        self.network.eval()
        x = normalise(images, self.mean, self.std)
        plain = self.network.embed(x).float().cpu()
        mirrored = self.network.embed(x.flip(3)).float().cpu()
        return plain, mirrored, rows.cpu()


class _Progress(L.Callback):
    """The embedding step on catalog_ai's own progress bar (stderr, like every other step)."""

    def __init__(self, bar) -> None:
        self.bar = bar

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.bar.update(len(batch[1]))


class _HeadFit(L.LightningModule):
    """The head alone, on embeddings: weighted marginal NLL, AdamW with a one-cycle schedule."""

    def __init__(
        self, head: torch.nn.Module, *, lr: float, weight_decay: float, label_smoothing: float
    ):
        super().__init__()
        self.head = head
        self.lr, self.weight_decay, self.label_smoothing = lr, weight_decay, label_smoothing

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        emb, mask, weights = batch  # mask: the leaves each photo's label covers
        loss = marginal_nll(
            self.head(emb), mask, label_smoothing=self.label_smoothing, reduction="none"
        )
        weighted: torch.Tensor = (loss * weights).mean()
        return weighted

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        optimizer = torch.optim.AdamW(
            self.head.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=self.lr,
            total_steps=max(1, int(self.trainer.estimated_stepping_batches)),
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


def _trainer(accelerator: str, *, epochs: int = 1, callbacks=()) -> L.Trainer:
    return L.Trainer(
        accelerator=accelerator,
        devices=1,  # a linear head on cached embeddings: one device is plenty
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        callbacks=list(callbacks),
        num_sanity_val_steps=0,
        # No ``deterministic``: Lightning would switch torch's deterministic algorithms on for
        # the rest of the process (calibration, serving); on the CPU these steps repeat exactly
        # without it (tests/training/test_probe.py).
    )


def train_linear_probe(
    module: HierarchicalClassifierModule,
    data: HierarchyDataModule,
    *,
    epochs: int,
    lr: float,
    weight_decay: float,
    label_smoothing: float,
    balance_power: float,
    seed: int,
    progress: bool,
    accelerator: str = "auto",
) -> ProbeFit:
    """Fit ``module.network.head`` on frozen embeddings of the training photos (in place).

    Returns the unmirrored training embeddings and their rows (the backbone did not change, so
    they are what the prototype memory needs too) and the device Lightning chose."""
    train = PlainDataset(
        data.train_cache, data.train_set.digests, data.train_set.rows, data.image_size
    )
    with progress_bar(
        total=len(train), desc="embedding training photos", unit="photo", enable=progress
    ) as bar:
        embedder = _trainer(accelerator, callbacks=[_Progress(bar)])
        batches = embedder.predict(_Embedder(module), DataLoader(train, batch_size=_BATCH))
    device = embedder.strategy.root_device
    outputs = cast("list[tuple[torch.Tensor, ...]]", batches)  # what _Embedder.predict_step returns
    plain = torch.cat([b[0] for b in outputs])
    mirrored = torch.cat([b[1] for b in outputs])
    rows = torch.cat([b[2] for b in outputs])

    # Photos and their mirror images train the head; only the photos make prototypes.
    emb, emb_rows = torch.cat([plain, mirrored]), torch.cat([rows, rows])
    weights = balanced_weights(emb_rows.tolist(), balance_power).float()
    weights = weights / weights.mean()
    steps_per_epoch = max(1, len(emb) // _STEP)
    loader = DataLoader(
        TensorDataset(emb, module.tree.target_mask(emb_rows), weights),
        batch_size=math.ceil(len(emb) / steps_per_epoch),
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    head = _HeadFit(
        module.network.head,
        lr=lr,
        weight_decay=weight_decay,
        label_smoothing=label_smoothing,
    )
    _trainer(accelerator, epochs=epochs).fit(head, loader)
    module.network.eval()
    return ProbeFit(plain, rows, device)
