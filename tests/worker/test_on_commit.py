"""``on_commit``: actions that must wait until the rows they name are committed."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from catalog_ai.db import TaxonomyVersion, migrate, session_factory, unit_of_work
from catalog_ai.db.session import on_commit


@pytest.fixture
def url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    migrate.upgrade(url)
    return url


def _add(session, source: str) -> None:
    session.add(TaxonomyVersion(source=source, fingerprint="0" * 64))


def _sources(url: str) -> list[str]:
    with sa.create_engine(url).connect() as connection:  # another connection: committed rows only
        return list(connection.scalars(sa.text("SELECT source FROM taxonomy_versions ORDER BY id")))


def test_callbacks_run_after_the_commit_in_order_and_see_the_rows(url):
    seen = []
    with unit_of_work(url) as session:
        _add(session, "a")
        on_commit(session, lambda: seen.append(("first", _sources(url))))
        on_commit(session, lambda: seen.append(("second", _sources(url))))
        session.flush()
        assert seen == []
    assert seen == [("first", ["a"]), ("second", ["a"])]


def test_a_rollback_drops_the_callbacks(url):
    seen = []
    with pytest.raises(RuntimeError), unit_of_work(url) as session:
        _add(session, "doomed")
        on_commit(session, lambda: seen.append("doomed"))
        raise RuntimeError("abort")
    with unit_of_work(url) as session:
        on_commit(session, lambda: seen.append("rolled back"))
        session.rollback()
        _add(session, "kept")
        on_commit(session, lambda: seen.append("kept"))
    assert seen == ["kept"] and _sources(url) == ["kept"]


def test_a_savepoint_rollback_drops_only_its_own_callbacks(url):
    seen = []
    with unit_of_work(url) as session:
        _add(session, "outer")
        on_commit(session, lambda: seen.append("outer"))
        savepoint = session.begin_nested()
        on_commit(session, lambda: seen.append("inner, rolled back"))
        savepoint.rollback()
        with session.begin_nested():
            on_commit(session, lambda: seen.append("inner, released"))
    assert seen == ["outer", "inner, released"]


def test_a_session_closed_without_commit_runs_nothing(url):
    seen = []
    session = session_factory(url)()
    _add(session, "never")
    on_commit(session, lambda: seen.append("never"))
    session.close()
    _add(session, "later")
    session.commit()
    session.close()
    assert seen == [] and _sources(url) == ["later"]


def test_a_failing_callback_does_not_stop_the_others_and_is_raised_after_the_commit(url):
    seen = []
    with pytest.raises(ZeroDivisionError), unit_of_work(url) as session:
        _add(session, "committed")
        on_commit(session, lambda: 1 / 0)
        on_commit(session, lambda: seen.append("still runs"))
    assert seen == ["still runs"] and _sources(url) == ["committed"]
