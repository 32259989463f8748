"""Near duplicates: the twin of a photo is found (and only the twin); the check runs after the
suggestion is committed, in its own transaction, not under ``record``'s row locks (searching the
index takes time; reviewers and other workers would wait on those rows meanwhile)."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy import select
from worker.support import activate, shared_model

from catalog_ai.db import Product, unit_of_work
from catalog_ai.index import SearchError
from catalog_ai.services.ingest import ingest_files
from catalog_ai.services.near_duplicates import find_near_duplicates
from catalog_ai.settings import get_settings
from catalog_ai.worker.pipeline import classify_chunk
from services.search_catalog import DIM, VERSION, build, vector


def test_near_duplicates_are_looked_up_after_the_suggestion_is_committed(
    catalog, tmp_path_factory, monkeypatch
):
    import catalog_ai.services.near_duplicates as search

    photos, bundle = shared_model(tmp_path_factory)
    activate(bundle.path)
    with unit_of_work() as session:
        first, second = ingest_files(session, photos[:2], media=catalog, dispatcher=None).created
    # Another connection sees committed rows only.
    observer = sa.create_engine(get_settings().database_url)
    seen: list[tuple[int, int]] = []  # (product id, its suggestions visible to others)

    def find(session, *, model_version, vector, exclude_product_id, build):
        assert build is False  # never minutes of index building inside a classification task
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
    import catalog_ai.services.near_duplicates as search

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


def test_near_duplicate_finds_the_twin_and_only_the_twin(search_catalog):
    build()
    with unit_of_work() as session:
        twin_vector = (
            session.get(Product, search_catalog["Arla standard milk"]).images[0].embeddings[0].to_array()
        )
        again = (
            twin_vector * 1.02 + np.random.default_rng(3).normal(size=DIM).astype(np.float32) * 0.01
        )
        found = find_near_duplicates(session, model_version=VERSION, vector=again)
        assert found is not None and found[0] == search_catalog["Arla standard milk"] and found[1] > 0.99
        # The upload itself is in the catalog already: it is not its own duplicate.
        assert (
            find_near_duplicates(
                session,
                model_version=VERSION,
                vector=again,
                exclude_product_id=search_catalog["Arla standard milk"],
            )
            is None
        )
        # A new product that merely looks like one of the catalog is not a duplicate by default.
        other = vector(1, np.random.default_rng(9))
        assert find_near_duplicates(session, model_version=VERSION, vector=other) is None
        assert (
            find_near_duplicates(session, model_version=VERSION, vector=other, threshold=-1.0)
            is not None
        )
        with pytest.raises(SearchError, match="not a cosine"):
            find_near_duplicates(session, model_version=VERSION, vector=other, threshold=2)
