"""The near-duplicate check runs after the suggestion is committed, in its own transaction, not
under ``record``'s row locks (searching the index takes time; reviewers and other workers would
wait on those rows meanwhile)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import select

from catalog_ai.db import Product, unit_of_work
from catalog_ai.services.ingest import ingest_files
from catalog_ai.settings import get_settings
from catalog_ai.worker.pipeline import classify_chunk
from worker.support import activate, shared_model


def test_near_duplicates_are_looked_up_after_the_suggestion_is_committed(
    catalog, tmp_path_factory, monkeypatch
):
    import catalog_ai.services.search as search

    photos, bundle = shared_model(tmp_path_factory)
    activate(bundle.path)
    with unit_of_work() as session:
        first, second = ingest_files(session, photos[:2], media=catalog, dispatcher=None).created
    # Another connection sees committed rows only.
    observer = sa.create_engine(get_settings().database_url)
    seen: list[tuple[int, int]] = []  # (product id, its suggestions visible to others)

    def find(session, *, model_version, vector, exclude_product_id):
        with observer.connect() as connection:
            visible = connection.scalar(
                sa.text("SELECT count(*) FROM suggestions WHERE product_id = :p"),
                {"p": exclude_product_id},
            )
        seen.append((exclude_product_id, visible))
        return (second, 0.97) if exclude_product_id == first else None

    monkeypatch.setattr(search, "find_near_duplicates", find)
    summary = classify_chunk([first, second])
    observer.dispose()
    # Looked up once each, when its suggestion was committed already.
    assert sorted(seen) == [(first, 1), (second, 1)]
    assert summary.claimed == 2 and summary.near_duplicates == 1
    with unit_of_work() as session:
        flags = {
            p.id: (p.duplicate_of_id, p.duplicate_score) for p in session.scalars(select(Product))
        }
    assert flags[first][0] == second and abs(flags[first][1] - 0.97) < 1e-6
    assert flags[second] == (None, None)


def test_a_failing_near_duplicate_check_keeps_the_suggestions(
    catalog, tmp_path_factory, monkeypatch, caplog
):
    import catalog_ai.services.search as search

    photos, bundle = shared_model(tmp_path_factory)
    activate(bundle.path)
    with unit_of_work() as session:
        [pid] = ingest_files(session, photos[:1], media=catalog, dispatcher=None).created

    def broken(session, **_):
        raise sa.exc.OperationalError("SELECT", {}, Exception("database is locked"))

    monkeypatch.setattr(search, "find_near_duplicates", broken)
    summary = classify_chunk([pid])
    assert summary.suggested + summary.accepted == 1 and summary.near_duplicates == 0
    assert "near-duplicate check failed" in caplog.text
    with unit_of_work() as session:
        assert session.get(Product, pid).status.value in {"suggested", "accepted"}
