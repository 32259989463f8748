"""Products per status kept by the database (migration 0008_scale's triggers): exact after every
kind of write (ORM inserts, bulk inserts, status updates of one and of many rows, updates that
leave the status alone, deletes), before and after folding, with folds racing writers and each
other on PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import delete, func, insert, select, update

from catalog_ai.db import Product, ProductStatus, ProductStatusDelta, migrate, unit_of_work
from catalog_ai.services.status_counts import fold_status_deltas, total_status_counts
from catalog_ai.settings import reset_settings


def _counted(session) -> dict[str, int]:
    query = select(Product.status, func.count()).group_by(Product.status)
    rows = {status: n for status, n in session.execute(query)}
    return {s.value: int(rows.get(s, 0)) for s in ProductStatus}


def test_the_kept_counts_equal_a_count_of_the_rows_after_every_kind_of_write(any_catalog):
    with unit_of_work() as s:
        assert total_status_counts(s) == {st.value: 0 for st in ProductStatus}
        s.add_all(Product(title=f"p{i}") for i in range(5))  # pending by default
        s.flush()
        s.execute(insert(Product), [{"title": f"b{i}", "status": "suggested"} for i in range(7)])
        assert total_status_counts(s) == _counted(s)
        first = s.scalars(select(Product).order_by(Product.id)).first()
        first.status = ProductStatus.PROCESSING
        s.flush()
        s.execute(
            update(Product)
            .where(Product.status == ProductStatus.SUGGESTED)
            .values(status="accepted")
        )
        s.execute(update(Product).values(title="renamed"))  # no status change: no delta
        s.execute(delete(Product).where(Product.id == first.id))
        assert total_status_counts(s) == _counted(s)
    with unit_of_work() as s:
        assert total_status_counts(s) == {
            "pending": 4,
            "processing": 0,
            "suggested": 0,
            "accepted": 7,
            "rejected": 0,
            "failed": 0,
        }
        assert fold_status_deltas(s) > 0
        assert s.scalar(select(func.count()).select_from(ProductStatusDelta)) == 0
        assert total_status_counts(s) == _counted(s)
        assert fold_status_deltas(s) == 0  # nothing left to fold
        s.execute(update(Product).where(Product.title == "renamed").values(status="failed"))
        assert (
            total_status_counts(s)
            == _counted(s)
            == {
                "pending": 0,
                "processing": 0,
                "suggested": 0,
                "accepted": 0,
                "rejected": 0,
                "failed": 11,
            }
        )


@pytest.mark.integration
def test_folds_racing_writers_and_each_other_lose_and_double_nothing(
    catalog_home, postgres_url, monkeypatch
):
    monkeypatch.setenv("CATALOG_AI_DATABASE_URL", postgres_url)
    reset_settings()
    migrate.upgrade()

    def write(n: int) -> None:
        for i in range(n):
            with unit_of_work() as s:
                s.add(Product(title=f"w{i}", status=ProductStatus.SUGGESTED))
                s.flush()
                s.execute(
                    update(Product)
                    .where(Product.title == f"w{i}", Product.status == ProductStatus.SUGGESTED)
                    .values(status="accepted")
                )

    def fold(n: int) -> None:
        for _ in range(n):
            with unit_of_work() as s:
                fold_status_deltas(s)

    threads = [threading.Thread(target=write, args=(40,)) for _ in range(2)]
    threads += [threading.Thread(target=fold, args=(40,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with unit_of_work() as s:
        assert total_status_counts(s) == _counted(s)
        assert _counted(s)["accepted"] == 80
        fold_status_deltas(s)
        assert total_status_counts(s) == _counted(s)
