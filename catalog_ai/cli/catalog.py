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
