"""The root ``catalog-ai`` group and helpers shared by the command modules."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from catalog_ai.errors import CatalogAIError

if TYPE_CHECKING:
    from catalog_ai.dispatch import Dispatcher

__all__ = ["cli", "dispatching", "echo_json", "ensure_db", "main", "safe_url"]


class _Group(click.Group):
    """Shows CatalogAIError messages as one clean line instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CatalogAIError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            ctx.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="catalog-ai")
def cli() -> None:
    """Sort product photos into your store's category tree."""


def main() -> None:
    cli(prog_name="catalog-ai")


def echo_json(data) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def ensure_db() -> None:
    """Migrate the embedded SQLite database on first use; server databases must be migrated."""
    from catalog_ai.db import migrate
    from catalog_ai.settings import get_settings

    if get_settings().database_url.startswith("sqlite"):
        migrate.upgrade()
    else:
        from catalog_ai.db.session import get_engine

        migrate.ensure_schema_current(get_engine())


@contextmanager
def dispatching(*, progress: bool = True) -> Iterator[Dispatcher]:
    """The dispatcher a command hands its background work to: Celery with a broker, else this
    process's in-process runner, whose work the command waits for (with a progress bar) before
    it ends, so that it prints the outcome and nothing is cut off at exit."""
    from catalog_ai.worker.dispatch import InProcessDispatcher, default_dispatcher, drain

    dispatcher = default_dispatcher()
    errors_before = len(dispatcher.errors) if isinstance(dispatcher, InProcessDispatcher) else 0
    try:
        yield dispatcher
    finally:
        # Work already committed still runs after an error; not after Ctrl-C.
        if not isinstance(sys.exc_info()[1], KeyboardInterrupt):
            drain(dispatcher, progress=progress)
            if isinstance(dispatcher, InProcessDispatcher):
                for line in dispatcher.errors[errors_before:]:
                    click.secho(f"  background work failed: {line}", fg="red", err=True)


def model_dir_option(f):
    """``--model DIR``: the model bundle a command reads (required)."""
    return click.option("--model", "model_dir", type=click.Path(path_type=Path), required=True)(f)


def data_dir_option(help: str, *, required: bool = False):
    """``--data DIR``: a folder tree of labelled photos (sub-folders are categories)."""
    return click.option(
        "--data",
        "data_dir",
        type=click.Path(path_type=Path),
        required=required,
        default=None,
        help=help,
    )
