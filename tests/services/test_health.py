"""Health figures: products per status (one count, however it is asked for), the oldest pending
product, catalog sizes, failures of a given set of products."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from catalog_ai.db import Product, ProductStatus, unit_of_work, utc_now
from catalog_ai.db.queries import IN_CHUNK
from catalog_ai.services.health import (
    catalog_counts,
    failures,
    oldest_pending,
    pipeline_status,
    status_counts,
)


def test_every_view_of_the_counts_agrees(reviewed_catalog):
    with unit_of_work() as s:
        counts = status_counts(s)
        by_ids = status_counts(s, list(reviewed_catalog.values()))
        status = pipeline_status(s)
        sizes = catalog_counts(s)
    # 4 imports + auto-red + 3 reviewer-accepted ones; junk rejected; waiting; pending.
    assert counts == {
        "pending": 1,
        "processing": 0,
        "suggested": 1,
        "accepted": 8,
        "rejected": 1,
        "failed": 0,
    }
    assert status["by_status"] == counts == sizes["by_status"]
    assert status["products"] == sizes["products"] == 11
    assert status["active_model"] == "m1"
    # Only the named products: the six uploads (the imports and auto-red are left out).
    assert sum(by_ids.values()) == 6 and by_ids["rejected"] == 1 and by_ids["pending"] == 1
    assert sizes["images"] == 11 and sizes["categories"] == 7


def test_counts_and_failures_of_more_ids_than_one_in_list_holds(reviewed_catalog):
    pending = reviewed_catalog["pending"]
    with unit_of_work() as s:
        s.execute(
            update(Product)
            .where(Product.id == pending)
            .values(status=ProductStatus.FAILED, error="no photo")
        )
    many = [*range(100_000, 100_000 + 2 * IN_CHUNK), pending]  # unknown ids, then a real one
    with unit_of_work() as s:
        assert status_counts(s, many)["failed"] == 1
        assert failures(s, many) == {pending: "no photo"}


def test_the_oldest_pending_product_and_its_wait(reviewed_catalog):
    pending = reviewed_catalog["pending"]
    with unit_of_work() as s:
        s.execute(
            update(Product)
            .where(Product.id == pending)
            .values(status_changed_at=utc_now() - timedelta(seconds=90))
        )
    with unit_of_work() as s:
        oldest = oldest_pending(s)
        status = pipeline_status(s)
    assert oldest is not None
    state, waited = oldest
    assert state.product_id == pending and state.title == "pending"
    assert 89 <= waited < 120
    # The status command reports the same wait as the dashboard's oldest item.
    assert abs(status["oldest_pending_s"] - waited) < 5


def test_nothing_pending(reviewed_catalog):
    with unit_of_work() as s:
        s.execute(
            update(Product)
            .where(Product.status == ProductStatus.PENDING)
            .values(status=ProductStatus.FAILED)
        )
    with unit_of_work() as s:
        assert oldest_pending(s) is None
        assert pipeline_status(s)["oldest_pending_s"] is None
