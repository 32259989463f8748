"""The ``db`` command group: schema upgrades and the current revision."""

from __future__ import annotations

import click

from catalog_ai.cli._root import cli, safe_url


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
