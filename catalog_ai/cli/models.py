"""Commands for backbones, training, prediction, evaluation and model versions."""

from __future__ import annotations

import dataclasses
from contextlib import nullcontext
from pathlib import Path

import click

from catalog_ai.cli._root import cli, dispatching, echo_json, ensure_db


# --------------------------------------------------------------------------- backbones
@cli.group()
def backbones() -> None:
    """Image backbones offered by installed plugins."""


@backbones.command("list")
@click.option("--json", "as_json", is_flag=True)
def backbones_list(as_json: bool) -> None:
    """Name, plugin distribution, embedding width, input size, offline weights; broken plugins."""
    from catalog_ai.backbones import TIMM_PREFIX, describe, list_backbones, plugin_errors

    rows = [describe(spec) for spec in list_backbones()]
    errors = [
        {"distribution": e.distribution, "entry_point": e.entry_point, "error": e.cause}
        for e in plugin_errors()
    ]
    if as_json:
        echo_json({"backbones": rows, "broken_plugins": errors})
        return
    header = f"{'name':<26}{'distribution':<30}{'dim':>6}{'input':>7}  offline weights"
    click.echo(header)
    for r in rows:
        click.echo(
            f"{r['name']:<26}{r['distribution']:<30}{r['embedding_dim']:>6}{r['input_size']:>7}  "
            f"{'yes' if r['offline_weights'] else 'no'}"
        )
    click.echo(
        f"\nAny timm model also works as '{TIMM_PREFIX}<model_name>' (weights: local file, or the hub when online)."
    )
    for e in errors:
        click.secho(
            f"broken plugin {e['entry_point']} ({e['distribution']}): {e['error']}", fg="red"
        )


# --------------------------------------------------------------------------- training and models
@cli.command("train")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="folder tree of labelled photos (sub-folders are categories)",
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
    help="held-out folder tree for calibration and thresholds (default: 10%% of the training photos)",
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
    accelerator,
    devices,
    strategy,
    precision,
    num_workers,
    min_photos_per_category,
    auto_accept_from_holdout,
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
    ):
        if value is not None:
            setattr(config, name, value)
    rare = []
    if from_catalog:
        ensure_db()
        taxonomy, examples, description = examples_from_catalog(
            include_model_labels=include_model_labels
        )
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
            f"{min_photos_per_category} photos served by few-shot prototypes ({added.photos} photos)"
        )
    m = result.bundle.metrics["held_out"]
    click.echo(
        f"model {result.bundle.version} written to {out_dir}\n"
        f"  trained on {result.n_train} photos, calibrated on {result.n_held_out} held-out photos, "
        f"skipped {len(result.skipped)} unreadable; {result.seconds['total']:.0f} s\n"
        f"  held-out: leaf accuracy {m['leaf_accuracy']:.3f}, depth accuracy "
        + ", ".join(f"{a:.3f}" for a in m["depth_accuracy"])
        + f", ECE {m['ece']:.3f}, temperature {m['temperature']:.2f}\n"
        f"  next: catalog-ai evaluate --model {out_dir} --data DIR   |   catalog-ai models register {out_dir}"
    )
    for file, reason in result.skipped:
        click.echo(f"  skipped: {file}: {reason}", err=True)


@cli.command("predict")
@click.option("--model", "model_dir", type=click.Path(path_type=Path), required=True)
@click.argument(
    "images_", metavar="IMAGE...", nargs=-1, required=True, type=click.Path(path_type=Path)
)
@click.option("--json", "as_json", is_flag=True)
@click.option("--top-k", type=int, default=3, show_default=True)
def predict_cmd(model_dir: Path, images_: tuple[Path, ...], as_json: bool, top_k: int) -> None:
    """Classify photos: the confident path, per-depth alternatives, confidence, model version."""
    from catalog_ai.inference.predictor import Predictor

    predictor = Predictor.load(model_dir)
    predictor.decider.top_k = top_k
    results = predictor.predict(images_)
    if as_json:
        echo_json(
            [
                {"image": r.source, **({"error": r.error} if r.error else r.decision.to_dict())}
                for r in results
            ]
        )
        return
    for r in results:
        if r.error:
            click.secho(f"{r.source}: error: {r.error}", fg="red")
            continue
        d = r.decision
        chosen = d.path or "(abstains: not confident even at the top level)"
        note = (
            ""
            if not d.backed_off
            else f"   [backed off from {d.leaf_path} at {d.leaf_confidence:.2f}]"
        )
        click.echo(
            f"{r.source}\n  {chosen}   confidence {d.confidence:.3f}"
            + ("   auto-accept" if d.auto_accept else "")
            + ("   possibly a new category (far from every known one)" if d.open_set else "")
            + note
        )
        for depth, level in enumerate(d.levels, start=1):
            alts = ", ".join(f"{c.path.split(' > ')[-1]} {c.probability:.2f}" for c in level)
            click.echo(f"    depth {depth}: {alts}")
    click.echo(f"model {predictor.version}")


@cli.command("evaluate")
@click.option("--model", "model_dir", type=click.Path(path_type=Path), required=True)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="labelled folder tree (same category paths as the model)",
)
@click.option("--json", "as_json", is_flag=True, help="print the metrics as JSON")
@click.option(
    "--report",
    "report_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="write PNG plots and metrics.json here",
)
def evaluate_cmd(model_dir: Path, data_dir: Path, as_json: bool, report_dir: Path | None) -> None:
    """Accuracy per depth, top-5, hierarchical F1, calibration and coverage at precision."""
    from catalog_ai.services.evaluate import evaluate_folder

    result, skipped = evaluate_folder(
        model_dir, data_dir, report_dir=report_dir, progress=not as_json
    )
    m = result.metrics
    if as_json:
        echo_json(m)
    else:
        cov = m["coverage_at_precision"]
        click.echo(
            f"{m['n_images']} photos: leaf accuracy {m['leaf_accuracy']:.3f}, top-5 {m['top5_accuracy']:.3f}, "
            f"depth accuracy {', '.join(f'{a:.3f}' for a in m['depth_accuracy'] if a is not None)}\n"
            f"hierarchical F1 {m['hierarchical_f1']:.3f}, ECE {m['ece']:.3f}, coverage at precision "
            + ", ".join(f"{k}: {v:.3f}" for k, v in cov.items() if v is not None)
        )
        if report_dir:
            click.echo(f"report written to {report_dir}")
    for file, reason in skipped:
        click.echo(f"skipped unreadable photo {file}: {reason}", err=True)


@cli.command("calibrate")
@click.option(
    "--model",
    "model_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="model bundle (default with --from-reviews: the active model)",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="labelled folder of photos like those the store uploads (not training photos)",
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
        if from_reviews:
            from catalog_ai.services.review import reviewed_examples

            files, labels = reviewed_examples(session)
    if from_reviews:
        description = f"{len(files)} reviewed products"
    else:
        from catalog_ai.training.sources import load_folder_examples

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
    )
    click.echo(
        f"{bundle.version}: calibrated on {report['n_photos']} photos (leaf accuracy {report['leaf_accuracy']:.3f}); "
        f"temperature {report['temperature_before']:.2f} -> {report['temperature']:.2f}, "
        f"ECE {report['ece_before']:.3f} -> {report['ece_after_in_sample']:.3f} (in-sample); "
        f"auto-accept on at {cal.thresholds.auto_accept:.3f} for {cal.thresholds.auto_accept_target} precision"
        if cal.thresholds.auto_accept_enabled
        else f"{bundle.version}: calibrated, but no threshold reaches {cal.thresholds.auto_accept_target} precision "
        "on these photos: auto-accept stays off"
    )
    _adopt(bundle, activate=activate)


def catalog_exists() -> bool:
    """Whether there is a catalog database to look versions up in (an embedded one that was
    never created is not made just to find nothing registered)."""
    from sqlalchemy.engine import make_url

    from catalog_ai.settings import get_settings

    url = make_url(get_settings().database_url)
    if url.get_backend_name() != "sqlite":
        return True
    return bool(url.database) and url.database != ":memory:" and Path(url.database).exists()


def _adopt(bundle, *, activate: bool, add_categories: bool = False) -> None:
    """Register (and activate) a version derived from a registered one, and say what happened."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.versions import adopt_derived

    parent = bundle.parent["version"]
    row, activated = None, False
    if catalog_exists():  # no catalog yet: nothing is registered, nothing to adopt
        # Activation enqueues after the commit: what no person labelled gets this version's
        # suggestion, and the catalogue is embedded for search.
        with dispatching() as dispatcher, unit_of_work() as session:
            row, activated = adopt_derived(
                session,
                bundle,
                dispatcher=dispatcher,
                activate=activate,
                add_categories=add_categories,
            )
    click.echo(
        f"new model version {bundle.version} (derived from {parent}) in {bundle.path}; "
        f"{parent} is unchanged"
    )
    if row is None:
        click.echo(
            f"{parent} is not registered: register the new one with: catalog-ai models register {bundle.path}"
        )
    elif activated:
        click.echo(
            f"active model: {bundle.version}; re-classification enqueued (see catalog-ai status)"
        )
    else:
        click.echo(f"registered; activate with: catalog-ai models activate {bundle.version}")


@cli.group()
def models() -> None:
    """Registered model versions."""


@models.command("register")
@click.argument("bundle_dir", type=click.Path(path_type=Path))
@click.option("--add-categories", is_flag=True, help="add the model's categories the catalog lacks")
@click.option("--activate", is_flag=True, help="also make it the active model")
def models_register(bundle_dir: Path, add_categories: bool, activate: bool) -> None:
    """Record a model bundle in the catalog."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.models import activate_model, register_model

    ensure_db()
    with dispatching() as dispatcher, unit_of_work() as session:
        row = register_model(session, bundle_dir, add_categories=add_categories)
        if activate:
            activate_model(session, row.version, dispatcher=dispatcher)
        version, active = row.version, row.is_active
    click.echo(
        f"registered {version}"
        + (" (active)" if active else f"; activate with: catalog-ai models activate {version}")
    )


@models.command("activate")
@click.argument("version")
def models_activate(version: str) -> None:
    """Make VERSION the model that classifies new uploads."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.models import activate_model

    ensure_db()
    # Enqueued after the commit: every product without a human label gets a new suggestion, and
    # the catalogue is embedded for search.
    with dispatching() as dispatcher, unit_of_work() as session:
        activate_model(session, version, dispatcher=dispatcher)
    click.echo(f"active model: {version}; re-classification enqueued (see catalog-ai status)")


@models.command("thresholds")
@click.option(
    "--model",
    "model_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="model bundle (default: the active model)",
)
@click.option(
    "--decision",
    type=float,
    default=None,
    help="the walk down the tree stops below this probability",
)
@click.option(
    "--auto-accept", type=float, default=None, help="accept without review from this confidence"
)
@click.option("--no-auto-accept", is_flag=True, help="switch auto-accept off")
@click.option(
    "--activate/--no-activate",
    default=True,
    show_default=True,
    help="when the model is the active one, make the new version active",
)
def models_thresholds(
    model_dir: Path | None,
    decision: float | None,
    auto_accept: float | None,
    no_auto_accept: bool,
    activate: bool,
) -> None:
    """Change a model's thresholds: the result is a new version derived from it."""

    from catalog_ai.db import unit_of_work
    from catalog_ai.model.bundle import derive_bundle
    from catalog_ai.services.versions import derivation_base

    if decision is None and auto_accept is None and not no_auto_accept:
        raise click.UsageError("give --decision, --auto-accept or --no-auto-accept")
    if auto_accept is not None and no_auto_accept:
        raise click.UsageError("give --auto-accept or --no-auto-accept, not both")
    for name, value in (("--decision", decision), ("--auto-accept", auto_accept)):
        if value is not None and not 0.0 < value <= 1.0:
            raise click.UsageError(f"{name} {value} is not a probability in (0, 1]; give e.g. 0.9")
    ensure_db()
    with unit_of_work() as session:
        parent, memory, revision = derivation_base(session, model_dir)
    thresholds = dataclasses.replace(
        parent.thresholds,
        **({"decision": decision} if decision is not None else {}),
        **({"auto_accept": auto_accept} if auto_accept is not None else {}),
        **({"auto_accept": 1.01} if no_auto_accept else {}),
    )
    change = (
        f"thresholds: decision {parent.thresholds.decision} -> {thresholds.decision}, "
        f"auto-accept {parent.thresholds.auto_accept} -> {thresholds.auto_accept}"
    )
    bundle = derive_bundle(
        parent, change=change, thresholds=thresholds, prototypes=memory, memory_revision=revision
    )
    click.echo(f"{bundle.version}: {change}")
    _adopt(bundle, activate=activate)


@models.command("list")
def models_list() -> None:
    """Registered model versions, the active one marked."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.models import list_models

    ensure_db()
    with unit_of_work() as session:
        models = list_models(session)
        names = {m.id: m.version for m in models}
        rows = [
            (
                m.version,
                m.is_active,
                m.backbone,
                (m.metrics or {}).get("held_out", {}),
                names.get(m.parent_id),
            )
            for m in models
        ]
    for version, active, backbone, held, parent in rows:
        acc = held.get("leaf_accuracy")
        click.echo(
            f"{'*' if active else ' '} {version}  {backbone}"
            + (f"  held-out leaf accuracy {acc:.3f}" if acc is not None else "")
            + (f"  (derived from {parent})" if parent else "")
        )
