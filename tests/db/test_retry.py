"""run_chunk: a chunk that lost a lock race runs again in a fresh transaction; nothing else does."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from catalog_ai.db import TaxonomyVersion, unit_of_work
from catalog_ai.db import retry as retry_module
from catalog_ai.db.retry import CHUNK_ATTEMPTS, lost_lock_race, run_chunk


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"SQLSTATE {sqlstate}")
        self.sqlstate = sqlstate


def _dbapi_error(orig: Exception) -> DBAPIError:
    return DBAPIError("INSERT INTO products ...", {}, orig)


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(retry_module.time, "sleep", slept.append)
    return slept


def _sources(url: str) -> list[str]:
    with unit_of_work(url) as session:
        return list(session.scalars(sa.select(TaxonomyVersion.source).order_by(TaxonomyVersion.id)))


@pytest.mark.parametrize(
    "orig",
    [
        sqlite3.OperationalError("database is locked"),
        _PgError("40P01"),  # deadlock detected
        _PgError("40001"),  # serialization failure
    ],
    ids=["sqlite-locked", "pg-deadlock", "pg-serialization"],
)
def test_a_chunk_that_lost_a_lock_race_once_is_run_again_in_a_fresh_transaction(
    sqlite_url: str, orig: Exception, _no_backoff: list[float]
) -> None:
    calls = []

    def chunk(session):
        calls.append(session)
        session.add(TaxonomyVersion(source=f"attempt {len(calls)}", fingerprint="0" * 64))
        session.flush()
        if len(calls) == 1:
            raise _dbapi_error(orig)
        return "done"

    assert run_chunk(chunk, url=sqlite_url) == "done"
    assert len(calls) == 2 and calls[0] is not calls[1]
    assert len(_no_backoff) == 1
    # The first attempt was rolled back: only the second one's row is committed.
    assert _sources(sqlite_url) == ["attempt 2"]


def test_an_error_that_is_not_a_lock_race_is_raised_at_once(sqlite_url: str) -> None:
    calls = []

    def chunk(session):
        calls.append(1)
        raise _dbapi_error(sqlite3.OperationalError("disk I/O error"))

    with pytest.raises(DBAPIError, match="disk I/O error"):
        run_chunk(chunk, url=sqlite_url)
    assert calls == [1]


def test_a_lock_race_lost_on_every_attempt_is_raised_after_the_last(sqlite_url: str) -> None:
    calls = []

    def chunk(session):
        calls.append(1)
        raise _dbapi_error(_PgError("40P01"))

    with pytest.raises(DBAPIError, match="40P01"):
        run_chunk(chunk, url=sqlite_url, attempts=3)
    assert len(calls) == 3
    assert CHUNK_ATTEMPTS >= 3  # the default gives a loser a few chances


def test_an_error_after_the_commit_is_never_retried(sqlite_url: str) -> None:
    # A race reported by an on-commit callback: the chunk is committed, running it again would
    # store it twice.
    from catalog_ai.db.session import on_commit

    calls = []

    def chunk(session):
        calls.append(1)
        session.add(TaxonomyVersion(source="once", fingerprint="0" * 64))
        on_commit(
            session,
            lambda: (_ for _ in ()).throw(
                _dbapi_error(sqlite3.OperationalError("database is locked"))
            ),
        )

    with pytest.raises(DBAPIError, match="database is locked"):
        run_chunk(chunk, url=sqlite_url)
    assert calls == [1]
    assert _sources(sqlite_url) == ["once"]


def test_lost_lock_race_tells_races_from_other_errors() -> None:
    assert lost_lock_race(_dbapi_error(sqlite3.OperationalError("database is locked")))
    assert lost_lock_race(_dbapi_error(_PgError("40001")))
    assert not lost_lock_race(_dbapi_error(_PgError("23505")))  # unique violation
    assert not lost_lock_race(_dbapi_error(sqlite3.OperationalError("no such table: products")))
