"""The ``export`` command: the catalog's decisions as CSV, JSON lines or a shop feed."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from catalog_ai.cli._root import cli, ensure_db

# Written out, not imported: importing the database models here would load SQLAlchemy at every
# command's start (0.7 s). tests/cli/test_cli_feeds.py checks them against the service's.
_FORMATS = ["csv", "jsonl", "shopify-csv", "google-merchant"]
STATUSES = ["pending", "processing", "suggested", "accepted", "rejected", "failed"]


@cli.command("export")
@click.option("--format", "fmt", type=click.Choice(_FORMATS), required=True, help="what to write")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="file to write (default: standard output)",
)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(STATUSES),
    help="only products in this status (repeat for several)",
)
@click.option(
    "--only-final", is_flag=True, help="csv/jsonl: leave out products without a final category"
)
def export_cmd(fmt: str, output: Path | None, statuses: tuple[str, ...], only_final: bool) -> None:
    """Write every product's decision: final category (its path and its own id: the Google
    product category id, or the Shopify GID), confidence, who decided, model version.

    \b
    csv, jsonl       one row per product; without a final category, the newest suggestion
                     (decision "suggestion", with its confidence), unless --only-final
    shopify-csv      Handle, Title, Product Category: for Shopify's product import (update
                     existing products); final categories only
    google-merchant  tab-separated id, title, google_product_category, product_type for a
                     Merchant Center supplemental feed; final categories only
    """
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.export import export

    ensure_db()
    with unit_of_work() as session:
        if output is None:
            result = export(session, fmt, sys.stdout, statuses=statuses, only_final=only_final)
        else:
            # Written beside the file and renamed at the end: a stopped export leaves the old
            # file, never half a new one that a shop would import.
            target = output.with_name(output.name + ".part")
            try:
                with target.open("w", encoding="utf-8", newline="") as out:
                    result = export(session, fmt, out, statuses=statuses, only_final=only_final)
            except BaseException:
                target.unlink(missing_ok=True)
                raise
            target.replace(output)
    where = f" to {output}" if output is not None else ""
    skipped = ", ".join(f"{n} skipped: {why}" for why, n in result.skipped.items())
    click.echo(
        f"{result.written} products written{where}" + (f"; {skipped}" if skipped else ""), err=True
    )
