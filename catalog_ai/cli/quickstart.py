"""The README's main job on the embedded set-up (SQLite in $CATALOG_AI_HOME, no Redis).

1. create the catalog database and media store;
2. find the Grocery Store dataset (the shared copy, ``--data DIR``, or a download when online);
3. import its train photos as the labelled catalog;
4. train the quick model (a calibrated hierarchical head on frozen EfficientNet-Lite0
   embeddings, with the prototype memory) or reuse the one an earlier run trained;
5. register and activate it;
6. ingest the val photos as new uploads and classify them through the worker path (the
   in-process runner without a broker, the same task code a Celery worker runs), and wait for it;
7. print what happened: accepted automatically, waiting for review, failed; and what to run next.

Every step reuses what an earlier run built, so a second run is quick and adds nothing.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from catalog_ai.cli._root import cli

__all__ = ["QUICK_MODEL_NAME", "run_quickstart"]

QUICK_MODEL_NAME = "quickstart"


def _step(text: str) -> None:
    click.secho(f"==> {text}", fg="cyan", err=True)


def run_quickstart(*, data: Path | None = None, backbone: str = "efficientnet_lite0") -> dict:
    # Imported here, as every command does, so that `catalog-ai --help` stays fast.
    from catalog_ai.datasets.fetch import fetch_grocery_store, find_local_grocery_store
    from catalog_ai.db import migrate, unit_of_work
    from catalog_ai.jobs.folder_import import import_folder
    from catalog_ai.jobs.ingest import ingest_paths
    from catalog_ai.model.bundle import BundleError, ModelBundle
    from catalog_ai.services.health import status_counts
    from catalog_ai.services.models import activate_model, register_model
    from catalog_ai.settings import get_settings
    from catalog_ai.worker.dispatch import default_dispatcher, drain

    started = time.monotonic()
    settings = get_settings()
    _step(f"catalog database at {settings.database_url}")
    migrate.upgrade()

    _step("Grocery Store dataset (train and val splits; the test split is never used)")
    root = fetch_grocery_store(from_dir=data or find_local_grocery_store(), progress=True)
    click.echo(f"    using {root}", err=True)

    _step(f"importing the labelled catalog from {root / 'train'}")
    imported = import_folder(root / "train", progress=True)
    click.echo(
        f"    imported {imported.imported}, already in the catalog {imported.duplicates}, "
        f"failed {len(imported.failed)}, categories added {imported.categories_added}",
        err=True,
    )

    bundle_dir = settings.model_dir / QUICK_MODEL_NAME
    try:
        bundle = ModelBundle.load(bundle_dir)
        _step(f"reusing the quick model {bundle.version}")
    except BundleError:
        _step(
            "training the quick model (frozen backbone + calibrated hierarchical head, a few "
            "minutes)"
        )
        bundle = _train_quick_model(bundle_dir, backbone)

    dispatcher = default_dispatcher()
    with unit_of_work() as session:
        row = register_model(session, bundle_dir)
        # Re-classification and catalogue embedding are enqueued (and idempotent: a second run
        # finds them done).
        activate_model(session, row.version, dispatcher=dispatcher)
        version = row.version
    click.echo(f"    active model: {version}; embedding the catalogue for search", err=True)
    drain(dispatcher, progress=True)

    _step(f"ingesting {root / 'val'} as new uploads and classifying them (worker path)")
    uploads = ingest_paths([root / "val"], dispatcher=dispatcher, chunk_size=16, progress=True)
    drain(dispatcher, progress=True)
    ids = list(uploads.created) + [pid for _, pid in uploads.duplicates]
    ids += [f.product_id for f in uploads.failed if f.product_id is not None]
    with unit_of_work() as session:
        counts = status_counts(session, ids)
    auto_on = ModelBundle.load(bundle_dir).thresholds.auto_accept_enabled
    summary = {
        "auto_accept_enabled": auto_on,
        "uploads": len(ids),
        "new": len(uploads.created),
        "already_uploaded": len(uploads.duplicates),
        "accepted_automatically": counts.get("accepted", 0),
        "waiting_for_review": counts.get("suggested", 0),
        "failed": counts.get("failed", 0),
        "still_queued": counts.get("pending", 0) + counts.get("processing", 0),
        "model": version,
        "seconds": round(time.monotonic() - started, 1),
    }
    click.echo(
        f"\nmain job done in {summary['seconds']:.0f} s with model {version}\n"
        f"  {summary['uploads']} uploads ({summary['new']} new this run): "
        f"{summary['accepted_automatically']} accepted automatically, "
        f"{summary['waiting_for_review']} waiting for review, {summary['failed']} failed"
        + (f", {summary['still_queued']} still queued" if summary["still_queued"] else "")
        + (
            ""
            if auto_on
            else "\n  auto-accept is off: this model's confidence was calibrated on photos held "
            "out of its own "
            "training sessions,\n  which overstate certainty on new uploads; after reviewing ~100 "
            "products run "
            "`catalog-ai calibrate --from-reviews`"
        )
        + f"\n  data directory: {settings.home}\n"
        "  next: .venv/bin/catalog-ai users hash-password alice >> reviewers.txt   (a reviewer)\n"
        "        CATALOG_AI_USERS_FILE=reviewers.txt .venv/bin/catalog-ai dashboard   (review, "
        "least confident first)\n"
        "        .venv/bin/catalog-ai status         (counts per status)\n"
        "        .venv/bin/catalog-ai train --data DIR --out DIR   (the accurate, fine-tuned model)"
    )
    return summary


def _train_quick_model(bundle_dir: Path, backbone: str):
    from catalog_ai.training.fit import TrainConfig, fit
    from catalog_ai.training.sources import examples_from_catalog

    taxonomy, examples, description = examples_from_catalog()
    config = TrainConfig.preset("linear_probe")
    config.backbone = backbone
    result = fit(
        config,
        taxonomy=taxonomy,
        examples=examples,
        out_dir=bundle_dir,
        data_description=description,
    )
    held = result.bundle.metrics["held_out"]
    click.echo(
        f"    trained in {result.seconds['total']:.0f} s on {result.n_train} photos; held-out "
        f"leaf accuracy "
        f"{held['leaf_accuracy']:.3f} (held out from the same photo sessions: new uploads score "
        f"lower)",
        err=True,
    )
    return result.bundle


@cli.command("quickstart")
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    default=None,
    help="a local copy of the Grocery Store dataset (default: ../shared/datasets/grocery-store, "
    "else download)",
)
def quickstart(data: Path | None) -> None:
    """The main job on the embedded set-up: create the catalog and import the example photos."""
    run_quickstart(data=data)
