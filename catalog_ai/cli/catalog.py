"""The ``catalog`` command group: import a labelled folder, statistics."""

from __future__ import annotations

from pathlib import Path

import click

from catalog_ai.cli._root import cli, echo_json, ensure_db


@cli.group()
def catalog() -> None:
    """Products and photos in the catalog."""


@catalog.command("import-folder")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--chunk-size", default=64, show_default=True, help="photos per database transaction")
def catalog_import_folder(folder: Path, chunk_size: int) -> None:
    """Import labelled photos: FOLDER's sub-folders are the category tree.

    Photos are copied into the media store; identical files are stored once, so running the
    same import again adds nothing. Bad files are reported with their reason; the rest go on.
    """
    from catalog_ai.jobs.folder_import import import_folder

    ensure_db()
    summary = import_folder(folder, chunk_size=chunk_size, progress=True)
    _print_import_summary(summary)


def print_label_conflicts(summary) -> None:
    """Photos a person had labelled otherwise: their label was kept; say so, one line each."""
    for conflict in summary.conflicts:
        click.echo(f"  conflict: {conflict.describe()}", err=True)


def _print_import_summary(summary) -> None:
    click.echo(
        f"imported {summary.imported}, duplicates {summary.duplicates}, failed "
        f"{len(summary.failed)}"
        + (f", relabelled {summary.relabelled}" if summary.relabelled else "")
        + (f", label conflicts {len(summary.conflicts)}" if summary.conflicts else "")
        + (f", categories added {summary.categories_added}" if summary.categories_added else "")
    )
    for file, reason in summary.failed:
        click.echo(f"  failed: {file}: {reason}", err=True)
    print_label_conflicts(summary)
    if summary.skipped:  # never silently: say what was not taken, and why
        click.echo(summary.skipped_summary, err=True)
        for file, reason in summary.skipped[:20]:
            click.echo(f"  skipped: {file}: {reason}", err=True)
        if len(summary.skipped) > 20:
            click.echo(f"  ... and {len(summary.skipped) - 20} more", err=True)


@catalog.command("stats")
def catalog_stats() -> None:
    """Counts of categories and products per status."""
    from catalog_ai.services.health import catalog_counts

    ensure_db()
    from catalog_ai.db import unit_of_work

    with unit_of_work() as session:
        counts = catalog_counts(session)
    echo_json(counts)


@catalog.command("import-shopify-csv")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
def catalog_import_shopify_csv(file: Path, as_json: bool) -> None:
    """Import a Shopify product export (Products > Export in the Shopify admin).

    One product per Handle, with every Image Src of its rows as its photos (local paths are
    relative to FILE's folder; http(s) photos are downloaded unless CATALOG_AI_OFFLINE is set,
    up to CATALOG_AI_MAX_IMAGE_BYTES and CATALOG_AI_FETCH_TIMEOUT). A filled Product Category
    (Shopify's full path, or a category GID) is a person's label: the product is accepted in
    it, so import the Shopify taxonomy first (catalog-ai taxonomy import categories.txt).
    Products without one are classified. The handle is the product's external id: running the
    same export again adds nothing. A bad row or photo fails alone, with its reason.

    \b
    Exit status:
      0  every product was imported or already in the catalog (photos may have failed: listed)
      1  some products failed; the rest were imported
      2  usage error (not a Shopify export, no database)
    """
    from catalog_ai.cli._root import dispatching
    from catalog_ai.jobs.shopify_import import import_shopify_csv

    ensure_db()
    with dispatching(progress=not as_json) as dispatcher:
        summary = import_shopify_csv(file, dispatcher=dispatcher, progress=not as_json)
    if as_json:
        echo_json(summary.to_dict())
    else:
        for line in summary.problems():
            click.secho(f"  failed: {line}", fg="red", err=True)
        click.echo(
            f"{len(summary.outcomes)} products in {summary.rows} rows: "
            f"{len(summary.created)} created ({summary.labelled} with their Product Category), "
            f"{len(summary.existing)} already in the catalog, {len(summary.failed)} failed"
        )
    if summary.failed:
        click.get_current_context().exit(1)
