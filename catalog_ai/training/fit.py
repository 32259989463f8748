"""``fit()``: train, calibrate on held-out photos, choose thresholds, write the model bundle."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import lightning as L
import numpy as np
import torch

from catalog_ai.backbones import get_backbone
from catalog_ai.model.bundle import ModelBundle, check_output_dir, write_bundle
from catalog_ai.model.bundle_schema import IMAGE_SIZE_RANGE
from catalog_ai.model.calibration import PRECISION_TARGETS, calibrate
from catalog_ai.model.decision import Thresholds
from catalog_ai.settings import get_settings
from catalog_ai.taxonomy import Taxonomy
from catalog_ai.training.averaging import WeightAverages, parse_average
from catalog_ai.training.data import (
    Augment,
    Example,
    HierarchyDataModule,
    TrainingDataError,
    check_examples,
    stratified_split,
)
from catalog_ai.training.embeddings import build_prototypes, embed_dataset, embedding_backbone
from catalog_ai.training.freezing import FreezeSchedule
from catalog_ai.training.module import HierarchicalClassifierModule
from catalog_ai.training.probe import train_linear_probe

__all__ = ["PRECISION_TARGETS", "TrainConfig", "TrainResult", "fit"]

log = logging.getLogger(__name__)


PROBE_BACKBONE = "efficientnet_lite0"


@dataclass
class TrainConfig:
    """Every training setting, as plain data (it is stored in the bundle's manifest)."""

    mode: str = "finetune"  # or "linear_probe": the quick model (frozen backbone, head only)
    # Fine-tuning: EfficientNet-Lite2 at its native 260 px. On the Grocery Store (2 CPU threads)
    # it gave 82.1 % val leaf accuracy and 48 % coverage at 98 % precision against Lite0's 79.7 %
    # and 28 %, trained in 15 min and serves 41 photos/s (29 min and ~20 photos/s on a slower VM
    # of the same kind; docs/BENCHMARKS.md). The quick model keeps Lite0 (see ``preset``): it must
    # fit the main job's few minutes.
    backbone: str = "efficientnet_lite2"
    epochs: int = 8
    image_size: int | None = None  # default: the backbone's native input size
    batch_size: int = 32
    lr: float = 2e-3
    backbone_lr_scale: float = 0.5
    weight_decay: float = 0.02
    label_smoothing: float = 0.1
    dropout: float = 0.2
    frozen_groups: int = 4
    warmup_epochs: int = 0
    crop_scale_min: float = 0.35
    balance_power: float = 0.5
    holdout: float = 0.1
    eval_crop_pct: float = 1.0
    decision_threshold: float = 0.5
    auto_accept_precision: str = "0.98"
    # Photos held out of the training folder share its photo sessions and overstate certainty
    # on new uploads (Grocery Store: 97 % vs 67 % leaf accuracy), so they do not switch
    # auto-accept on unless asked; --val-data or `catalog-ai calibrate` do.
    auto_accept_from_holdout: bool = False
    seed: int = 0
    accelerator: str = "auto"
    devices: str = "auto"
    strategy: str = "auto"
    precision: str = "32-true"
    num_workers: int = 0
    backbone_weights: str | None = None
    progress: bool = True
    limit_train_batches: int | float | None = None  # tests: a few steps only
    # "none", or the average of the weights the bundle is written with: "ema<decay>" or
    # "swa<start share>" (catalog_ai/training/averaging.py; measured in docs/BENCHMARKS.md).
    weight_averaging: str = "none"
    # Benchmarks: more averages to keep, written with the raw final weights to
    # checkpoints/weights/<name>.safetensors for a paired comparison from one run.
    record_averages: list[str] = field(default_factory=list)

    @classmethod
    def preset(cls, mode: str) -> TrainConfig:
        """Defaults per mode: the probe trains a head only, on cached embeddings, so it takes
        many more (and much cheaper) epochs."""
        if mode == "linear_probe":
            return cls(mode=mode, backbone=PROBE_BACKBONE, epochs=60, lr=3e-3, weight_decay=1e-4)
        return cls(mode=mode)


@dataclass
class TrainResult:
    bundle: ModelBundle
    n_train: int
    n_held_out: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)


def fit(
    config: TrainConfig,
    *,
    taxonomy: Taxonomy,
    examples: Sequence[Example],
    out_dir: Path,
    held_out: Sequence[Example] | None = None,
    data_description: str = "",
) -> TrainResult:
    """Train a hierarchical classifier on ``examples`` and write a bundle to ``out_dir``.

    Calibration and thresholds are fitted on ``held_out`` when given, else on a stratified
    ``config.holdout`` share of ``examples`` that the network never trains on.
    """
    started = time.monotonic()
    out_dir = Path(out_dir)
    check_output_dir(out_dir)
    if config.decision_threshold < 0.5:
        raise TrainingDataError(
            "decision_threshold must be at least 0.5 (one confident category per level)"
        )
    if config.mode not in ("finetune", "linear_probe"):
        raise TrainingDataError(f"mode must be 'finetune' or 'linear_probe', not {config.mode!r}")
    if config.auto_accept_precision not in PRECISION_TARGETS:
        raise TrainingDataError(f"auto_accept_precision must be one of {PRECISION_TARGETS}")
    spec = get_backbone(config.backbone)
    image_size = config.image_size or spec.preprocessing.input_size
    lo, hi = IMAGE_SIZE_RANGE
    if not lo <= image_size <= hi:  # checked now, not when the bundle is written after training
        raise TrainingDataError(
            f"image_size={image_size} must be in {lo}..{hi}; give --image-size in that range"
        )
    if not 0.0 < config.eval_crop_pct <= 1.0:
        raise TrainingDataError(f"eval_crop_pct={config.eval_crop_pct!r} must be in (0, 1]")
    if config.weight_averaging != "none":
        parse_average(config.weight_averaging)  # refused now, not after training
    for text in config.record_averages:
        parse_average(text)
    check_examples(taxonomy, examples)
    L.seed_everything(config.seed, workers=True, verbose=False)

    if held_out is None:
        train_set, held_set = stratified_split(examples, config.holdout, seed=config.seed)
    else:
        check_examples_known(taxonomy, held_out)
        train_set, held_set = list(examples), list(held_out)
    if not held_set:
        raise TrainingDataError(
            "no held-out photos to calibrate on: give --val-data or use categories with at least "
            "4 photos"
        )

    data = HierarchyDataModule(
        taxonomy=taxonomy,
        train=train_set,
        held_out=held_set,
        cache_root=get_settings().home / "cache" / "decoded",
        image_size=image_size,
        eval_crop_pct=config.eval_crop_pct,
        # The probe sees each photo exactly as serving does: one cache for both splits.
        train_as_served=config.mode == "linear_probe",
        batch_size=config.batch_size,
        num_workers=config.num_workers,
        seed=config.seed,
        balance_power=config.balance_power,
        augment=Augment(image_size, scale=(config.crop_scale_min, 1.0)),
        interpolation=spec.preprocessing.interpolation,
        progress=config.progress,
    )
    t0 = time.monotonic()
    data.setup("fit")
    decode_s = time.monotonic() - t0

    module = HierarchicalClassifierModule(
        backbone=config.backbone,
        taxonomy=taxonomy.to_dict(),
        lr=config.lr,
        backbone_lr_scale=config.backbone_lr_scale,
        weight_decay=config.weight_decay,
        label_smoothing=config.label_smoothing,
        dropout=config.dropout,
        backbone_weights=config.backbone_weights,
    )
    t0 = time.monotonic()
    probe_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None
    if config.mode == "linear_probe":
        probe = train_linear_probe(
            module,
            data,
            epochs=config.epochs,
            lr=config.lr,
            weight_decay=config.weight_decay,
            label_smoothing=config.label_smoothing,
            balance_power=config.balance_power,
            seed=config.seed,
            progress=config.progress,
            accelerator=config.accelerator,
        )
        probe_embeddings = (probe.embeddings, probe.rows)
        # Lightning hands the module back on the CPU: embed for calibration on the probe's device.
        module.to(probe.device)
        device = str(probe.device)
    else:
        averages = _averages(config)
        trainer = _trainer(config, out_dir, [] if averages is None else [averages])
        trainer.fit(module, datamodule=data)
        if not trainer.is_global_zero:  # other ranks of a multi-GPU run stop here
            return None  # type: ignore[return-value]
        if averages is not None and config.record_averages:
            _save_weight_variants(averages, out_dir / "checkpoints" / "weights")
        root = trainer.strategy.root_device
        device = str(root)
        # Lightning hands the module back on the CPU; embedding the photos for calibration and
        # prototypes on the training device instead saves most of that step on a GPU.
        module.to(root)
    fit_s = time.monotonic() - t0

    t0 = time.monotonic()
    backbone = embedding_backbone(module, data.held_set)
    held_emb, logits, rows = embed_dataset(module, data.held_set, backbone=backbone)
    independent = held_out is not None
    cal = calibrate(
        logits,
        rows,
        module.tree,
        decision_threshold=config.decision_threshold,
        auto_accept_precision=config.auto_accept_precision,
        enable_auto_accept=independent or config.auto_accept_from_holdout,
        source=f"{len(rows)} "
        + ("validation photos" if independent else "photos held out of the training set"),
    )
    temperature, thresholds, node_probs = cal.temperature, cal.thresholds, cal.node_probs
    memory = build_prototypes(
        module,
        data,
        held_emb,
        logits / temperature,
        rows,
        progress=config.progress,
        train_embeddings=probe_embeddings,
        backbone=backbone,
    )
    calibrate_s = time.monotonic() - t0

    metrics = held_out_metrics(node_probs, rows.numpy(), taxonomy, thresholds)
    metrics["temperature"] = temperature
    skipped = [(str(e.file), reason) for e, reason in data.skipped]
    seconds = {
        "decode": round(decode_s, 1),
        "fit": round(fit_s, 1),
        "calibrate": round(calibrate_s, 1),
    }
    seconds["total"] = round(time.monotonic() - started, 1)
    training = {
        "config": asdict(config),
        "image_size": image_size,
        "data": data_description,
        "n_train": len(data.train_set),
        "n_held_out": len(data.held_set),
        "skipped": len(skipped),
        "seconds": seconds,
        "device": device,
    }
    bundle = write_bundle(
        out_dir,
        state_dict=module.network.state_dict(),  # write_bundle copies it to the CPU
        backbone=config.backbone,
        embedding_dim=spec.embedding_dim,
        preprocessing=spec.preprocessing,
        image_size=image_size,
        eval_crop_pct=config.eval_crop_pct,
        temperature=temperature,
        thresholds=thresholds,
        taxonomy=taxonomy,
        metrics={"held_out": metrics},
        training=training,
        prototypes=memory,
    )
    _write_held_out_report(bundle, node_probs, rows.numpy(), [str(f) for f in data.held_files])
    return TrainResult(bundle, len(data.train_set), len(data.held_set), skipped, seconds)


def _write_held_out_report(
    bundle: ModelBundle, node_probs: np.ndarray, rows: np.ndarray, files: list[str]
) -> None:
    """Plots of the held-out evaluation in the bundle (``report/``): the dashboard shows them."""
    from catalog_ai.evaluation import evaluate_arrays, write_report

    result = evaluate_arrays(
        node_probs,
        rows,
        bundle.taxonomy,
        thresholds=bundle.thresholds,
        model_version=bundle.version,
        image_paths=files,
    )
    write_report(result, bundle.path / "report", taxonomy=bundle.taxonomy, image_paths=files)


def _averages(config: TrainConfig) -> WeightAverages | None:
    use = None if config.weight_averaging == "none" else config.weight_averaging
    if use is None and not config.record_averages:
        return None
    return WeightAverages(config.record_averages, use=use)


def _save_weight_variants(averages: WeightAverages, folder: Path) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    for name, state in averages.states.items():
        save_file(
            {k: v.contiguous() for k, v in state.items()}, str(folder / f"{name}.safetensors")
        )


def _trainer(config: TrainConfig, out_dir: Path, extra_callbacks: list) -> L.Trainer:
    return L.Trainer(
        max_epochs=config.epochs,
        accelerator=config.accelerator,
        devices=_devices(config.devices),
        strategy=config.strategy,
        precision=cast(Any, config.precision),  # a string Lightning checks against its list
        callbacks=[
            FreezeSchedule(frozen_groups=config.frozen_groups, warmup_epochs=config.warmup_epochs),
            *extra_callbacks,
            L.pytorch.callbacks.ModelCheckpoint(
                dirpath=out_dir / "checkpoints", save_last=True, save_top_k=0
            ),
        ],
        logger=L.pytorch.loggers.CSVLogger(out_dir / "checkpoints", name="logs"),
        enable_progress_bar=config.progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        reload_dataloaders_every_n_epochs=1,
        log_every_n_steps=10,
        limit_train_batches=config.limit_train_batches,
        deterministic="warn",
    )


def check_examples_known(taxonomy: Taxonomy, examples: Sequence[Example]) -> None:
    unknown = sorted({e.label for e in examples} - {n.text for n in taxonomy})
    if unknown:
        raise TrainingDataError(
            f"{len(unknown)} validation labels are not categories of the training tree "
            f"(first: {unknown[0]!r}); validation photos must use the same category paths"
        )


def _devices(value: str):
    return int(value) if str(value).isdigit() else value


def held_out_metrics(
    node_probs: np.ndarray, rows: np.ndarray, taxonomy: Taxonomy, thresholds: Thresholds
) -> dict:
    from catalog_ai.evaluation import evaluate_arrays

    return evaluate_arrays(node_probs, rows, taxonomy, thresholds=thresholds).metrics
