"""A PostgreSQL database of a benchmark's own, and pointing this process at a catalogue: what
seed_catalog.py, vector_cache.py and the bulk benchmarks share."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def new_database(prefix: str, admin_url: str = ADMIN_URL) -> str:
    """A new, empty database ``<prefix>_<random>`` on the server of ``admin_url``; its URL."""
    import sqlalchemy as sa

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str, admin_url: str = ADMIN_URL) -> None:
    """Drop the database of ``url`` (this process's engines first, other sessions forced)."""
    import sqlalchemy as sa

    from catalog_ai.db import dispose_engines

    dispose_engines()
    name = sa.make_url(url).database
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def use_catalogue(url: str, home: Path) -> None:
    """Point this process at the catalogue at ``url`` with ``home`` as CATALOG_AI_HOME, every
    other CATALOG_AI_* setting at its default."""
    from catalog_ai.db import dispose_engines
    from catalog_ai.settings import reset_settings

    for key in [k for k in os.environ if k.startswith("CATALOG_AI_")]:
        del os.environ[key]
    os.environ["CATALOG_AI_DATABASE_URL"] = url
    os.environ["CATALOG_AI_HOME"] = str(home)
    reset_settings()
    dispose_engines()
