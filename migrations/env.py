"""Alembic environment for catalog_ai: targets ``catalog_ai.db.Base.metadata``.

The database URL comes from, in order: the URL ``catalog_ai.db.migrate`` passes in, the
``sqlalchemy.url`` option of the Alembic config, ``CATALOG_AI_DATABASE_URL`` (via settings).
"""

from __future__ import annotations

import logging
from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from catalog_ai.db import Base, UTCDateTime
from catalog_ai.db.migrate import compare_options
from catalog_ai.db.session import new_engine
from catalog_ai.errors import DatabaseError
from catalog_ai.settings import get_settings

config = context.config
if config.config_file_name is not None:  # the alembic command line with alembic.ini
    fileConfig(config.config_file_name, disable_existing_loggers=False)

log = logging.getLogger("alembic.env")
target_metadata = Base.metadata


def _url() -> str:
    return (
        config.attributes.get("catalog_ai.url")
        or config.get_main_option("sqlalchemy.url")
        or get_settings().database_url
    )


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    # Migrations must not import catalog_ai's own column types: they have to keep working
    # when those types change. Render UTCDateTime as the plain type it stores.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure_options(is_sqlite: bool) -> dict[str, Any]:
    return {
        "target_metadata": target_metadata,
        # SQLite cannot ALTER most things: batch mode rebuilds the table instead.
        "render_as_batch": is_sqlite,
        "render_item": _render_item,
        **compare_options(),
    }


def run_migrations_offline() -> None:
    url = _url()
    context.configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **_configure_options(url.startswith("sqlite")),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    # NullPool: the pragma below must die with this connection, not return to a pool.
    engine = new_engine(_url(), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            is_sqlite = connection.dialect.name == "sqlite"
            if is_sqlite:
                # Batch mode drops and recreates tables; with foreign keys on, dropping a parent
                # table would cascade-delete (or refuse) its children's rows.
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.commit()
            context.configure(connection=connection, **_configure_options(is_sqlite))
            with context.begin_transaction():
                context.run_migrations()
            if is_sqlite:
                broken = connection.execute(text("PRAGMA foreign_key_check")).fetchall()
                connection.commit()
                if broken:
                    raise DatabaseError(
                        f"the migration left rows whose foreign keys point nowhere: {broken[:10]}"
                    )
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
