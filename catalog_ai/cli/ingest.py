"""Commands that bring photos in and get them classified: ``ingest``, ``retry``, ``sweep``."""

from __future__ import annotations

from pathlib import Path

import click

from catalog_ai.cli._root import cli, dispatching, echo_json, ensure_db


@cli.command("ingest")
@click.argument(
    "paths", metavar="PATH...", nargs=-1, required=True, type=click.Path(path_type=Path)
)
@click.option("--title", default=None, help="product title (default: the file name without suffix)")
@click.option("--external-id", default=None, help="the shop's own product id (one file only)")
@click.option(
    "--chunk-size",
    default=64,
    show_default=True,
    type=click.IntRange(min=1),
    help="photos per database transaction",
)
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def ingest_cmd(
    paths: tuple[Path, ...],
    title: str | None,
    external_id: str | None,
    chunk_size: int,
    as_json: bool,
) -> None:
    """Add new product photos (files, or folders searched recursively) to be classified.

    Each photo becomes a pending product; its classification is enqueued once it is committed
    (with no broker configured it runs in this process, and the command waits for it and reports
    photos that failed there too, e.g. a file cut off after its header; with a broker see
    `catalog-ai status`). Photos already in the catalog are reported with their product and not
    added again. A file that cannot be used is
    reported with its reason and the others go on: unusable bytes become one failed product
    (the same bad file ingested again reports that product again), a path that cannot be read
    (missing, unreadable, over the size limit) makes none. In folders, photo files are taken
    (sorted) and every other file is listed as ignored; a folder without photos is a failure.

    \b
    Exit status:
      0  every file was ingested or already in the catalog
      1  some files (or folders) failed (in ingest, or in classification when it ran in this
         process); the rest were ingested
      2  usage error (bad option, --external-id with several files, no database)
    """
    from catalog_ai.jobs.ingest import ingest_paths
    from catalog_ai.worker.dispatch import InProcessDispatcher

    ensure_db()
    with dispatching(progress=not as_json) as dispatcher:
        summary = ingest_paths(
            paths,
            dispatcher=dispatcher,
            title=title,
            external_id=external_id,
            chunk_size=chunk_size,
            progress=not as_json,
        )
    if isinstance(dispatcher, InProcessDispatcher):  # classified already: its failures count too
        from catalog_ai.db import unit_of_work
        from catalog_ai.services.health import failures
        from catalog_ai.services.ingest import FailedFile

        with unit_of_work() as session:
            failed = failures(session, summary.created)
        summary.failed += [
            FailedFile(f, pid, failed[pid]) for f, pid in summary.ingested if pid in failed
        ]
    if as_json:
        echo_json(
            {
                "created": summary.created,
                "ingested": [{"file": f, "product_id": pid} for f, pid in summary.ingested],
                "duplicates": [{"file": f, "product_id": pid} for f, pid in summary.duplicates],
                "failed": [
                    {"file": f.file, "product_id": f.product_id, "reason": f.reason}
                    for f in summary.failed
                ],
                "ignored": [{"file": f, "reason": why} for f, why in summary.ignored],
            }
        )
    else:
        _print_ingest(summary)
    if summary.failed:
        click.get_current_context().exit(1)


def _print_ingest(summary) -> None:
    if summary.created:
        click.echo("product ids: " + " ".join(map(str, summary.created)))
    for file, pid in summary.duplicates:
        click.echo(f"  already in the catalog: {file} (product {pid})")
    for f in summary.failed:
        where = f" (product {f.product_id})" if f.product_id is not None else ""
        click.secho(f"  failed: {f.file}: {f.reason}{where}", fg="red", err=True)
    for file, why in summary.ignored:
        click.echo(f"  ignored ({why}): {file}", err=True)
    click.echo(
        f"{len(summary.created)} new products, {len(summary.duplicates)} already in the catalog, "
        f"{len(summary.failed)} failed"
        + (f", {len(summary.ignored)} ignored" if summary.ignored else "")
    )
    click.echo("  next: catalog-ai status")


@cli.command("retry")
@click.argument("product_ids", metavar="[PRODUCT_ID]...", nargs=-1, type=int)
@click.option("--failed", "all_failed", is_flag=True, help="retry every failed product")
def retry_cmd(product_ids: tuple[int, ...], all_failed: bool) -> None:
    """Put failed products back to pending and enqueue them."""
    from catalog_ai.jobs.ingest import retry_products

    if bool(product_ids) == all_failed:
        raise click.UsageError("give product ids, or --failed for every failed product")
    ensure_db()
    with dispatching() as dispatcher:
        summary = retry_products(None if all_failed else list(product_ids), dispatcher=dispatcher)
    click.echo(
        f"{len(summary.requeued)} products enqueued again"
        + (": " + " ".join(map(str, summary.requeued)) if summary.requeued else "")
    )
    for pid in summary.not_found:
        click.secho(f"  no product {pid}", fg="red", err=True)
    for pid, status in summary.not_failed:
        click.echo(f"  product {pid} is {status}, not failed: left as it is", err=True)
    for pid in summary.no_photo:
        click.echo(
            f"  product {pid} failed at ingest and has no photo: ingest the photo again", err=True
        )


@cli.command("sweep")
@click.option(
    "--older-than",
    type=float,
    default=None,
    help="seconds waiting (default: CATALOG_AI_STALE_AFTER)",
)
def sweep_cmd(older_than: float | None) -> None:
    """Enqueue again the products left pending or processing too long.

    Workers started with --beat do this every CATALOG_AI_SWEEP_INTERVAL seconds.
    """
    from catalog_ai.jobs.ingest import sweep_now

    ensure_db()
    with dispatching() as dispatcher:
        ids = sweep_now(older_than, dispatcher=dispatcher)
    click.echo(
        f"{len(ids)} products enqueued again" + (": " + " ".join(map(str, ids)) if ids else "")
    )
