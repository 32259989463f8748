"""The README's main job on the embedded set-up (SQLite in $CATALOG_AI_HOME, no Redis).

Each step reuses what an earlier run built, so running it twice is quick and adds nothing.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from catalog_ai.datasets import fetch_grocery_store, find_local_grocery_store
from catalog_ai.db import migrate, unit_of_work
from catalog_ai.jobs import import_folder
from catalog_ai.services.stats import catalog_counts
from catalog_ai.settings import get_settings

__all__ = ["run_quickstart"]


def _step(text: str) -> None:
    click.secho(f"==> {text}", fg="cyan", err=True)


def run_quickstart(*, data: Path | None = None) -> None:
    started = time.monotonic()
    settings = get_settings()
    _step(f"catalog database at {settings.database_url}")
    migrate.upgrade()

    _step("Grocery Store dataset (train and val splits)")
    local = data or find_local_grocery_store()
    root = fetch_grocery_store(from_dir=local, progress=True)
    click.echo(f"    using {root}", err=True)

    _step(f"importing labelled photos from {root / 'train'}")
    summary = import_folder(root / "train", progress=True)
    click.echo(
        f"    imported {summary.imported}, already in the catalog {summary.duplicates}, "
        f"failed {len(summary.failed)}, categories added {summary.categories_added}",
        err=True,
    )
    for file, reason in summary.failed:
        click.echo(f"    failed: {file}: {reason}", err=True)

    with unit_of_work() as session:
        counts = catalog_counts(session)
    click.echo(
        f"\ncatalog ready in {time.monotonic() - started:.0f} s: {counts['categories']} categories, "
        f"{counts['products']} products ({counts['by_status']['accepted']} labelled)\n"
        f"  data directory: {settings.home}\n"
        "  next: catalog-ai taxonomy show --max-depth 2"
    )
