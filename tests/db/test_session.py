"""Engines and sessions: unit_of_work, SQLite pragmas, helpful errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from catalog_ai.db import (
    Category,
    TaxonomyVersion,
    dispose_engines,
    get_engine,
    session_factory,
    unit_of_work,
)
from catalog_ai.db.migrate import ensure_schema_current, upgrade
from catalog_ai.errors import DatabaseError


def _versions(url: str) -> list[str]:
    with unit_of_work(url) as session:
        return list(session.scalars(sa.select(TaxonomyVersion.source).order_by(TaxonomyVersion.id)))


def test_unit_of_work_commits_on_success(sqlite_url: str) -> None:
    with unit_of_work(sqlite_url) as session:
        session.add(TaxonomyVersion(source="fewshot", fingerprint="0" * 64))
    # A different connection sees it: it was committed, not just flushed.
    with sa.create_engine(sqlite_url).connect() as connection:
        assert connection.execute(sa.text("SELECT source FROM taxonomy_versions")).all() == [
            ("fewshot",)
        ]


def test_unit_of_work_rolls_back_and_reraises(sqlite_url: str) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), unit_of_work(sqlite_url) as session:
        session.add(TaxonomyVersion(source="doomed", fingerprint="0" * 64))
        session.flush()  # the row reached the database inside the transaction
        raise Boom
    assert _versions(sqlite_url) == []


def test_unit_of_work_closes_the_session(sqlite_url: str) -> None:
    engine = get_engine(sqlite_url)
    with unit_of_work(sqlite_url) as session:
        version = TaxonomyVersion(source="folder:/x", fingerprint="0" * 64)
        session.add(version)
        session.flush()
        assert engine.pool.checkedout() == 1
    assert not session.in_transaction()
    assert version not in session  # expunged by close()
    assert engine.pool.checkedout() == 0
    # expire_on_commit=False: the object stays readable after the unit of work.
    assert version.id is not None and version.created_at.tzinfo is not None


def test_sqlite_connections_have_the_pragmas(sqlite_url: str) -> None:
    with get_engine(sqlite_url).connect() as connection:
        pragma = lambda name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
        assert pragma("foreign_keys") == 1
        assert pragma("journal_mode") == "wal"
        assert pragma("busy_timeout") == 30_000
    # Foreign keys are enforced, not just declared.
    with pytest.raises(IntegrityError), unit_of_work(sqlite_url) as session:
        session.add(Category(path="X", name="X", depth=0, source="import", taxonomy_version=12345))


def test_upgrade_and_get_engine_create_the_sqlite_directory(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'not' / 'yet' / 'catalog.db'}"
    upgrade(url)
    assert (tmp_path / "not" / "yet" / "catalog.db").is_file()
    ensure_schema_current(get_engine(url))


def test_engines_are_cached_per_url(tmp_path: Path) -> None:
    a, b = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    assert get_engine(a) is get_engine(a)
    assert get_engine(a) is not get_engine(b)
    assert session_factory(a).kw["bind"] is get_engine(a)
    first = get_engine(a)
    dispose_engines()
    assert get_engine(a) is not first


def test_the_default_url_comes_from_the_settings(catalog_home: Path) -> None:
    engine = get_engine()
    assert engine.url.database == str(catalog_home / "catalog.db")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "cannot parse"),
        ("postgresql+nosuchdriver://bob:s3cret@db.example/catalog", "driver"),
        ("mysql://bob:s3cret@db.example/catalog", "driver"),
    ],
)
def test_bad_urls_raise_database_error_without_the_password(url: str, expected: str) -> None:
    with pytest.raises(DatabaseError, match=expected) as caught:
        get_engine(url)
    message = str(caught.value)
    assert "s3cret" not in message
    assert "CATALOG_AI_DATABASE_URL" in message or "postgresql+psycopg://" in message


def test_missing_tables_become_an_upgrade_hint(empty_db_url: str) -> None:
    with (
        pytest.raises(DatabaseError, match="run `catalog-ai db upgrade`"),
        unit_of_work(empty_db_url) as session,
    ):
        session.scalars(sa.select(TaxonomyVersion)).all()
