"""The health page (AppTest): broker, products per status, the oldest pending item, failures."""

from __future__ import annotations

from datetime import timedelta

from catalog_ai.db import Product, ProductStatus, unit_of_work, utc_now
from conftest import frame


def test_health_numbers(catalog, open_app):
    with unit_of_work() as s:
        stuck = Product(title="stuck", status=ProductStatus.PENDING)
        newer = Product(title="newer", status=ProductStatus.PENDING)
        broken = Product(title="broken", status=ProductStatus.FAILED, error="cannot identify image file")
        s.add_all([stuck, newer, broken])
        s.flush()
        stuck.status_changed_at = utc_now() - timedelta(minutes=7)
        stuck_id = stuck.id
    at = open_app("health")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Broker"] == "in-process" and metrics["Queue depth"] == "0"
    assert (metrics["all"], metrics["accepted"], metrics["suggested"], metrics["pending"], metrics["failed"]) == (
        "17", "8", "6", "2", "1")
    assert metrics["Waiting for"].startswith("0:07:0")
    assert any(f"product **#{stuck_id}** stuck" in m.value for m in at.markdown)
    failures = frame(at, "product_id", "error")
    assert failures["error"].tolist() == ["cannot identify image file"]
