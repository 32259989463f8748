"""The ``taxonomy`` command group: import a category tree, show it."""

from __future__ import annotations

from pathlib import Path

import click

from catalog_ai.cli._root import cli, ensure_db


@cli.group()
def taxonomy() -> None:
    """Category trees."""


@taxonomy.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    # Written out, not catalog_ai.taxonomy.FORMATS: importing the taxonomy at CLI start-up costs
    # a second (tests/cli/test_cli_taxonomy.py checks the two lists agree).
    type=click.Choice(["auto", "paths", "google", "csv", "shopify", "folder"]),
    default="auto",
    show_default=True,
    help=(
        "paths: 'A > B > C' lines; google: 'ID - A > B' lines; csv: id,path or "
        "id,parent_id,name; shopify: the Shopify Standard Product Taxonomy "
        "(categories.txt or categories.json)"
    ),
)
def taxonomy_import(file: Path, fmt: str) -> None:
    """Add the categories of FILE (or folder tree) to the catalog."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.catalog_import import sync_taxonomy
    from catalog_ai.taxonomy import load_taxonomy

    tree = load_taxonomy(file, format=fmt)
    ensure_db()
    with unit_of_work() as session:
        result = sync_taxonomy(session, tree, source=f"import:{file}")
    click.echo(
        f"{len(tree)} categories read (depth up to {tree.max_depth}, {len(tree.leaves)} leaves): "
        f"{result.added} added, {result.existing} already in the catalog"
        + (f"; taxonomy version {result.version}" if result.version else "")
    )


@taxonomy.command("show")
@click.option("--max-depth", type=int, default=None, help="only print levels up to this depth")
def taxonomy_show(max_depth: int | None) -> None:
    """Print the catalog's category tree with product counts (a branch counts its whole subtree)."""
    from sqlalchemy import func, select

    from catalog_ai.db import Category, Product, unit_of_work
    from catalog_ai.errors import printable

    ensure_db()
    with unit_of_work() as session:
        direct = dict(
            session.execute(
                select(Product.category_id, func.count()).group_by(Product.category_id)
            ).all()
        )
        rows = session.execute(
            select(Category.id, Category.parent_id, Category.path, Category.name, Category.depth)
        ).all()
    parent = {r.id: r.parent_id for r in rows}
    total: dict[int, int] = {}
    for cid, n in direct.items():
        while cid is not None:
            total[cid] = total.get(cid, 0) + n
            cid = parent.get(cid)
    for r in sorted(rows, key=lambda r: r.path):
        if max_depth is None or r.depth <= max_depth:
            n = total.get(r.id, 0)
            # Escaped: names imported before the taxonomy contract may hold control characters.
            click.echo(f"{'  ' * (r.depth - 1)}{printable(r.name)}" + (f"  ({n})" if n else ""))
