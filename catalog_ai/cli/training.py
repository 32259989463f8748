"""Commands that make a model: ``train`` and ``calibrate``."""

from __future__ import annotations

import dataclasses
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import click

from catalog_ai.cli._root import cli, data_dir_option, ensure_db
from catalog_ai.cli.models import adopt, catalog_exists

if TYPE_CHECKING:
    from catalog_ai.training.data import Example


@cli.command("train")
@data_dir_option(
    "folder tree of labelled photos (sub-folders are categories)",
)
@click.option(
    "--from-catalog",
    is_flag=True,
    help="train on the catalog's products labelled by people (imports, reviews, few-shot "
    "examples) instead",
)
@click.option(
    "--include-model-labels",
    is_flag=True,
    help="with --from-catalog: also train on products a model auto-accepted (its own "
    "guesses, unchecked by anyone)",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="model bundle directory to write",
)
@click.option(
    "--mode",
    type=click.Choice(["finetune", "linear_probe"]),
    default="finetune",
    show_default=True,
    help="finetune: the accurate model; linear_probe: the quick one (frozen backbone, head only)",
)
@click.option(
    "--backbone",
    default=None,
    help="see `catalog-ai backbones list` (default: efficientnet_lite2 to fine-tune, "
    "efficientnet_lite0 for the linear probe)",
)
@click.option(
    "--backbone-weights",
    type=click.Path(path_type=Path),
    default=None,
    help="local pretrained weights file (.safetensors or .pth) for the backbone",
)
@click.option("--epochs", type=int, default=None, help="default: the preset's")
@click.option(
    "--image-size", type=int, default=None, help="input side in pixels (default: the backbone's)"
)
@click.option(
    "--val-data",
    type=click.Path(path_type=Path),
    default=None,
    help="held-out folder tree for calibration and thresholds (default: 10%% of the training "
    "photos)",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--batch-size", type=int, default=None)
@click.option("--lr", type=float, default=None)
@click.option(
    "--frozen-groups", type=int, default=None, help="backbone layer groups kept frozen (stem first)"
)
@click.option(
    "--label-smoothing",
    type=click.FloatRange(0.0, 0.5, max_open=True),
    default=None,
    help="default 0.1; 0 keeps known categories steadier when few-shot categories are added, "
    "but the model is less accurate and less calibrated (docs/BENCHMARKS.md)",
)
@click.option(
    "--weight-averaging",
    default=None,
    metavar="SPEC",
    help="write the bundle with averaged weights: ema, ema<decay> (e.g. ema0.998), swa or "
    "swa<start share> (e.g. swa0.5); default none (docs/BENCHMARKS.md)",
)
@click.option("--accelerator", default="auto", show_default=True, help="cpu, gpu, mps or auto")
@click.option(
    "--devices", default="auto", show_default=True, help="number of devices, e.g. 2 for two GPUs"
)
@click.option("--strategy", default="auto", show_default=True, help="Lightning strategy, e.g. ddp")
@click.option(
    "--precision", default="32-true", show_default=True, help="e.g. 16-mixed or bf16-mixed on a GPU"
)
@click.option(
    "--num-workers", type=int, default=0, show_default=True, help="data loading processes"
)
@click.option(
    "--min-photos-per-category",
    type=click.IntRange(1),
    default=5,
    show_default=True,
    help="with --from-catalog: categories with fewer accepted photos are served by few-shot "
    "prototypes instead of a head output",
)
@click.option(
    "--auto-accept-from-holdout",
    is_flag=True,
    help="switch auto-accept on from photos held out of the training folder (they share its "
    "photo sessions and overstate certainty; prefer --val-data or `catalog-ai calibrate`)",
)
@click.option(
    "--promote-if-better",
    is_flag=True,
    help="with --from-catalog: register the new version and activate it only if it beats the "
    "active one on the most recent products people labelled (held out of this training); "
    "else it stays registered, inactive, with the reason (catalog-ai models list)",
)
@click.option(
    "--margin",
    type=click.FloatRange(0.0, 1.0),
    default=0.01,
    show_default=True,
    help="with --promote-if-better: the leaf-accuracy gain (0.01 = one point) it must win by",
)
@click.option(
    "--holdout-recent",
    type=click.IntRange(1),
    default=200,
    show_default=True,
    help="with --promote-if-better: recent person-labelled products kept out to compare on",
)
def train_cmd(
    data_dir,
    from_catalog,
    include_model_labels,
    out_dir,
    mode,
    backbone,
    backbone_weights,
    epochs,
    image_size,
    val_data,
    seed,
    batch_size,
    lr,
    frozen_groups,
    label_smoothing,
    weight_averaging,
    accelerator,
    devices,
    strategy,
    precision,
    num_workers,
    min_photos_per_category,
    auto_accept_from_holdout,
    promote_if_better,
    margin,
    holdout_recent,
) -> None:
    """Fine-tune a backbone into a calibrated hierarchical classifier and write a model bundle."""
    from catalog_ai.taxonomy import Taxonomy
    from catalog_ai.training.fit import TrainConfig, fit
    from catalog_ai.training.sources import (
        examples_from_catalog,
        load_folder_examples,
        split_rare_categories,
    )

    if bool(data_dir) == bool(from_catalog):
        raise click.UsageError("give exactly one of --data DIR or --from-catalog")
    if include_model_labels and not from_catalog:
        raise click.UsageError("--include-model-labels goes with --from-catalog")
    if promote_if_better and not from_catalog:
        raise click.UsageError("--promote-if-better goes with --from-catalog")
    config = TrainConfig.preset(mode)
    config = dataclasses.replace(
        config,
        auto_accept_from_holdout=auto_accept_from_holdout,
        seed=seed,
        accelerator=accelerator,
        devices=devices,
        strategy=strategy,
        precision=precision,
        num_workers=num_workers,
        backbone_weights=str(backbone_weights) if backbone_weights else None,
    )
    for name, value in (
        ("backbone", backbone),
        ("epochs", epochs),
        ("image_size", image_size),
        ("batch_size", batch_size),
        ("lr", lr),
        ("frozen_groups", frozen_groups),
        ("label_smoothing", label_smoothing),
        ("weight_averaging", weight_averaging),
    ):
        if value is not None:
            setattr(config, name, value)
    rare: list[Example] = []
    compare_on: list[int] = []  # --promote-if-better: the products held out to compare on
    if from_catalog:
        ensure_db()
        taxonomy, examples, description = examples_from_catalog(
            include_model_labels=include_model_labels
        )
        if promote_if_better:
            from catalog_ai.cli.model_checks import hold_out_recent

            examples, compare_on = hold_out_recent(examples, holdout_recent)
        click.echo(f"training on the {description}")
        examples, rare = split_rare_categories(examples, min_photos_per_category)
        if rare:
            taxonomy = Taxonomy.from_paths(sorted({e.label for e in examples}))
    else:
        taxonomy, examples, description = load_folder_examples(data_dir)
    held_out = None
    if val_data is not None:
        _, held_out, _ = load_folder_examples(val_data, taxonomy=taxonomy)
    result = fit(
        config,
        taxonomy=taxonomy,
        examples=examples,
        out_dir=out_dir,
        held_out=held_out,
        data_description=description,
    )
    if result is None:
        return
    if rare:
        from catalog_ai.services.fewshot import add_examples

        added = add_examples(out_dir, [(e.file, tuple(e.label.split(" > "))) for e in rare])
        click.echo(
            f"  {len(added.added) + len(added.updated)} categories with fewer than "
            f"{min_photos_per_category} photos served by few-shot prototypes ({added.photos} "
            f"photos)"
        )
    m = result.bundle.metrics["held_out"]
    click.echo(
        f"model {result.bundle.version} written to {out_dir}\n"
        f"  trained on {result.n_train} photos, calibrated on {result.n_held_out} held-out photos, "
        f"skipped {len(result.skipped)} unreadable; {result.seconds['total']:.0f} s\n"
        f"  held-out: leaf accuracy {m['leaf_accuracy']:.3f}, depth accuracy "
        + ", ".join(f"{a:.3f}" for a in m["depth_accuracy"])
        + f", ECE {m['ece']:.3f}, temperature {m['temperature']:.2f}\n"
        f"  next: catalog-ai evaluate --model {out_dir} --data DIR   |   catalog-ai models "
        f"register {out_dir}"
    )
    for file, reason in result.skipped:
        click.echo(f"  skipped: {file}: {reason}", err=True)
    if promote_if_better:
        from catalog_ai.cli.model_checks import promote_trained

        promote_trained(out_dir, held_out=compare_on, margin=margin)


@cli.command("calibrate")
@click.option(
    "--model",
    "model_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="model bundle (default with --from-reviews: the active model)",
)
@data_dir_option(
    "labelled folder of photos like those the store uploads (not training photos)",
)
@click.option(
    "--from-reviews", is_flag=True, help="use the products reviewers accepted or corrected"
)
@click.option(
    "--min-photos", default=50, show_default=True, help="refuse to calibrate on fewer photos"
)
@click.option(
    "--activate/--no-activate",
    default=True,
    show_default=True,
    help="when the calibrated model is the active one, make the new version active",
)
def calibrate_cmd(
    model_dir: Path | None,
    data_dir: Path | None,
    from_reviews: bool,
    min_photos: int,
    activate: bool,
) -> None:
    """Re-fit confidence calibration and auto-accept thresholds on independent photos.

    This is what switches auto-accept on for a model trained without --val-data. The result is a
    new model version (a new bundle next to the old one, which is left as it was), registered
    when the old one is, and active when the old one was (unless --no-activate).
    """

    from catalog_ai.db import unit_of_work
    from catalog_ai.inference.recalibrate import recalibrate_bundle
    from catalog_ai.model.bundle import BundleError
    from catalog_ai.services.versions import derivation_base

    if bool(data_dir) == bool(from_reviews):
        raise click.UsageError("give exactly one of --data DIR or --from-reviews")
    if data_dir is not None and model_dir is None:
        raise click.UsageError("--model is required with --data")
    if from_reviews or catalog_exists():
        ensure_db()
    with unit_of_work() if catalog_exists() else nullcontext() as session:
        # The new version starts from what the model serves now: its reviews' revisions too.
        parent, memory, revision = derivation_base(session, model_dir)
        model_dir = parent.path
        weights: list[float] | None = None
        if from_reviews:
            # Reviews and audits, each weighted by its stratum, so that the sample is not the
            # hard photos alone (catalog_ai.inference.recalibrate explains the weights).
            from catalog_ai.services.live_precision import weighted_review_photos

            assert session is not None  # --from-reviews made the catalog (ensure_db above)
            files, labels, weights = weighted_review_photos(session)
    if from_reviews:
        description = f"{len(files)} reviewed and audited products, weighted by stratum"
    else:
        from catalog_ai.training.sources import load_folder_examples

        assert data_dir is not None  # exactly one of --data and --from-reviews (checked above)
        _, examples, description = load_folder_examples(data_dir)
        files, labels = [e.file for e in examples], [e.label for e in examples]
    if len(files) < min_photos:
        raise BundleError(
            f"only {len(files)} labelled photos to calibrate on; at least {min_photos} are needed "
            "for thresholds that mean something (review more products, or lower --min-photos)"
        )
    bundle, cal, report = recalibrate_bundle(
        model_dir,
        files,
        labels,
        source=description,
        progress=True,
        skip_unknown=from_reviews,
        memory=memory,
        memory_revision=revision,
        weights=weights,
    )
    click.echo(
        f"{bundle.version}: calibrated on {report['n_photos']} photos (leaf accuracy "
        f"{report['leaf_accuracy']:.3f}); "
        f"temperature {report['temperature_before']:.2f} -> {report['temperature']:.2f}, "
        f"ECE {report['ece_before']:.3f} -> {report['ece_after_in_sample']:.3f} (in-sample); "
        f"auto-accept on at {cal.thresholds.auto_accept:.3f} for "
        f"{cal.thresholds.auto_accept_target} precision"
        if cal.thresholds.auto_accept_enabled
        else f"{bundle.version}: calibrated, but no threshold reaches "
        f"{cal.thresholds.auto_accept_target} precision "
        "on these photos: auto-accept stays off"
    )
    adopt(bundle, activate=activate)
