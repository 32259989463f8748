"""The dashboard on the production settings: the real PostgreSQL and the real Redis broker, no
worker running. A review is written to PostgreSQL; an upload is committed and its task waits in
Redis, which the health page shows; nothing is classified in the dashboard's process."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from catalog_ai.db import Product, ProductStatus, Review, dispose_engines, unit_of_work
from catalog_ai.settings import get_settings, reset_settings
from catalog_builder import build_catalog, png_bytes

pytestmark = pytest.mark.integration


@pytest.fixture
def production(catalog_home, auth_env, postgres_url, redis_url, monkeypatch, tmp_path) -> dict[str, int]:
    monkeypatch.setenv("CATALOG_AI_DATABASE_URL", postgres_url)
    monkeypatch.setenv("CATALOG_AI_BROKER_URL", redis_url)
    reset_settings()  # the worker app follows the settings on its next enqueue (configure())
    ids = build_catalog(tmp_path / "bundles")
    yield ids
    dispose_engines()


def test_review_and_upload_on_postgres_with_redis(production, open_app):
    assert get_settings().database_url.startswith("postgresql")

    at = open_app()
    pid = production["q-none"]
    assert at.subheader[0].value == "q-none"  # least confident first, read from PostgreSQL
    at.button(key=f"reject-{pid}").click().run()
    assert not at.exception
    with unit_of_work() as s:
        assert [(r.reviewer, str(r.action)) for r in s.scalars(select(Review).where(Review.product_id == pid))] == [
            ("alice", "reject")]
        assert s.get(Product, pid).status == ProductStatus.REJECTED

    at = open_app("upload")
    at.file_uploader[0].set_value([("carrot.png", png_bytes((30, 60, 220), 301), "image/png")]).run()
    at.button(key="upload-go").click().run()
    assert not at.exception
    with unit_of_work() as s:
        new = s.scalars(select(Product).where(Product.id > max(production.values()))).one()
        # A broker is configured: the dashboard enqueued the task after the commit and did not
        # classify in its own process; no worker runs, so the product waits.
        assert new.status == ProductStatus.PENDING

    at = open_app("health")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Broker"].startswith("redis")
    assert int(metrics["Queue depth"]) >= 1
    assert metrics["Workers seen"] == "0"
    assert any("No worker answered" in w.value for w in at.warning)
