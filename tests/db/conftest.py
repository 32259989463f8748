"""Fixtures for the database tests: migrated SQLite and PostgreSQL databases.

Creating and migrating a database costs about half a second on PostgreSQL, so the model tests
share one migrated database per run and empty its tables before each test. Tests about migrations
and empty databases use ``postgres_url`` (a brand-new database each) instead.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from catalog_ai.db import Base
from catalog_ai.db.migrate import upgrade
from catalog_ai.db.session import dispose_engines

# The same server and variable as tests/conftest.py's postgres_url.
_POSTGRES_ADMIN_URL = os.environ.get(
    "CATALOG_AI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(autouse=True)
def _dispose_engines() -> Iterator[None]:
    # Engines are cached per URL and most tests use new URLs: close them when the test ends.
    yield
    dispose_engines()


@pytest.fixture(scope="session")
def _migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "catalog.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, _migrated_sqlite_template: Path) -> str:
    """A SQLite file migrated to head (a copy of one migrated once per run)."""
    target = tmp_path / "catalog.db"
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{_migrated_sqlite_template}{suffix}")
        if source.exists():
            shutil.copyfile(source, f"{target}{suffix}")
    return f"sqlite:///{target}"


@pytest.fixture(scope="session")
def _shared_postgres_url() -> Iterator[str]:
    admin = sa.create_engine(_POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        connection = admin.connect()
    except sa.exc.OperationalError:
        admin.dispose()
        pytest.skip(
            f"PostgreSQL is not reachable at {_POSTGRES_ADMIN_URL}; start it to run this test"
        )
    name = f"catalog_ai_dbtests_{uuid.uuid4().hex[:12]}"
    with connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(_POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        dispose_engines()
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def migrated_postgres_url(_shared_postgres_url: str) -> str:
    """A PostgreSQL database migrated to head, with every table empty."""
    engine = sa.create_engine(_shared_postgres_url)
    try:
        # DELETE, not TRUNCATE: on a few rows it is ten times faster (no new files, no fsync).
        with engine.begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(table.delete())
    finally:
        engine.dispose()
    return _shared_postgres_url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def db_url(request: pytest.FixtureRequest) -> str:
    """A migrated database URL with empty tables, once SQLite and once the real PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("migrated_postgres_url")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An existing but never migrated database, once SQLite and once PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return request.getfixturevalue("postgres_url")
