"""The ``dataset`` command group: fetch the example dataset."""

from __future__ import annotations

from pathlib import Path

import click

from catalog_ai.cli._root import cli


@cli.group()
def dataset() -> None:
    """Example datasets."""


@dataset.command("fetch")
@click.argument("name", type=click.Choice(["grocery-store"]))
@click.option(
    "--from",
    "from_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="use a local copy instead of downloading",
)
@click.option(
    "--dest",
    type=click.Path(path_type=Path),
    default=None,
    help="where to put it (default: $CATALOG_AI_HOME/datasets/NAME)",
)
def dataset_fetch(name: str, from_dir: Path | None, dest: Path | None) -> None:
    """Get the Grocery Store dataset's train and val photos (never its held-back test split)."""
    from catalog_ai.datasets.fetch import fetch_grocery_store

    path = fetch_grocery_store(dest=dest, from_dir=from_dir, progress=True)
    click.echo(str(path))
