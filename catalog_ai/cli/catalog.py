"""Commands for the catalog: database schema, category trees, photo imports, datasets."""

from __future__ import annotations

from pathlib import Path

import click

from catalog_ai.cli._root import cli, echo_json, ensure_db, safe_url


# --------------------------------------------------------------------------- db
@cli.group()
def db() -> None:
    """The catalog database (schema migrations)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Create or migrate the database schema."""
    from catalog_ai.db import migrate
    from catalog_ai.settings import get_settings

    migrate.upgrade(revision=revision)
    click.echo(
        f"database {safe_url(get_settings().database_url)} at revision {migrate.current_revision()}"
    )


@db.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Migrate the schema down to REVISION ('base' drops everything)."""
    from catalog_ai.db import migrate

    migrate.downgrade(revision=revision)
    click.echo(f"database at revision {migrate.current_revision()}")


@db.command("current")
def db_current() -> None:
    """Show the schema revision of the database."""
    from catalog_ai.db import migrate

    click.echo(f"current: {migrate.current_revision()}  head: {migrate.head_revision()}")


# --------------------------------------------------------------------------- taxonomy
@cli.group()
def taxonomy() -> None:
    """Category trees."""


@taxonomy.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "paths", "google", "csv", "folder"]),
    default="auto",
    show_default=True,
    help="paths: 'A > B > C' lines; google: 'ID - A > B' lines; csv: id,path or id,parent_id,name",
)
def taxonomy_import(file: Path, fmt: str) -> None:
    """Add the categories of FILE (or folder tree) to the catalog."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.catalog import sync_taxonomy
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


# --------------------------------------------------------------------------- catalog
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
        f"imported {summary.imported}, duplicates {summary.duplicates}, failed {len(summary.failed)}"
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
    from catalog_ai.services.stats import catalog_counts

    ensure_db()
    from catalog_ai.db import unit_of_work

    with unit_of_work() as session:
        counts = catalog_counts(session)
    echo_json(counts)


# --------------------------------------------------------------------------- dataset
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


# --------------------------------------------------------------------------- quickstart
@cli.command("quickstart")
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    default=None,
    help="a local copy of the Grocery Store dataset (default: ../shared/datasets/grocery-store, else download)",
)
def quickstart(data: Path | None) -> None:
    """The main job on the embedded set-up: create the catalog and import the example photos."""
    from catalog_ai.cli.quickstart import run_quickstart

    run_quickstart(data=data)


# --------------------------------------------------------------------------- users
@cli.group()
def users() -> None:
    """Reviewer accounts for the dashboard (see README, 'Dashboard access')."""


@users.command("hash-password")
@click.argument("name")
@click.option(
    "--stdin",
    "from_stdin",
    is_flag=True,
    help="read the password from the first line of standard input (scripts) instead of "
    "asking twice without echo",
)
@click.option("--password", hidden=True, default=None)
def users_hash_password(name: str, from_stdin: bool, password: str | None) -> None:
    """Print a NAME:HASH line (Argon2id) for CATALOG_AI_USERS or CATALOG_AI_USERS_FILE.

    The password is asked for without echo (or read with --stdin), never taken from the command
    line, where shell history and `ps` would keep it. Only the line goes to stdout (the prompts
    go to stderr), so `catalog-ai users hash-password alice >> reviewers.txt` builds a users file.
    """
    import sys

    from catalog_ai.auth import check_new_password, hash_password
    from catalog_ai.errors import ConfigError

    if password is not None:
        raise click.UsageError(
            "a password is never taken from the command line (shell history and `ps` keep it): "
            "type it at the prompt, or pipe it in with --stdin"
        )
    if ":" in name or ";" in name or not name.strip():
        raise click.BadParameter(
            "a reviewer name may not be empty or contain ':' or ';'", param_hint="NAME"
        )
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    try:
        check_new_password(password)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="password") from None
    click.echo(f"{name}:{hash_password(password)}")
