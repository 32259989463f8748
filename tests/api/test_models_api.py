"""Audits, live precision, compare and promote-if-better over real HTTP on a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from services.audit_catalog import add_product, add_version

from catalog_ai.db import unit_of_work
from catalog_ai.services.audits import sample_audits

pytestmark = pytest.mark.integration


@pytest.fixture
def audited(api_server) -> list[int]:
    """Version m1: three auto-accepted products, two drawn for audit; one sent to review."""
    with unit_of_work() as s:
        mv = add_version(s)
        ids = [add_product(s, mv, f"a{i}", "Fruit > Apple", 0.99, auto=True) for i in range(3)]
        sample_audits(s, ids[:2], model_version_id=mv.id, rate=1.0)
        sample_audits(s, ids[2:], model_version_id=mv.id, rate=0.0)
        add_product(s, mv, "r", "Veg > Carrot", 0.4, auto=False)
    return ids


def test_the_audit_queue_the_verdicts_and_the_live_figures(audited, api_client) -> None:
    reader, reviewer = api_client("read"), api_client("review", owner="carol")
    queue = reader.get("/v1/review-queue", params={"source": "audit"}).json()
    assert queue["total"] == 2
    assert [(i["product_id"], i["is_audit"], i["path"]) for i in queue["items"]] == [
        (audited[0], True, "Fruit > Apple"),
        (audited[1], True, "Fruit > Apple"),
    ]
    plain = reader.get("/v1/review-queue").json()
    assert [i["is_audit"] for i in plain["items"]] == [False]

    right = reviewer.post(f"/v1/products/{audited[0]}/audit", json={})
    assert right.status_code == 200, right.text
    assert (right.json()["verdict"], right.json()["reviewer"]) == ("correct", "carol")
    wrong = reviewer.post(
        f"/v1/products/{audited[1]}/audit", json={"category_path": "Fruit > Banana"}
    )
    assert wrong.json()["verdict"] == "incorrect", wrong.text
    again = reviewer.post(f"/v1/products/{audited[1]}/audit", json={})
    assert again.status_code == 422 and "no open audit" in again.json()["detail"]
    unknown = reviewer.post(f"/v1/products/{audited[2]}/audit", json={})
    assert unknown.status_code == 422
    assert reader.post(f"/v1/products/{audited[2]}/audit", json={}).status_code == 403

    [m1] = reader.get("/v1/models").json()["models"]
    live = m1["live"]
    assert live["auto_accept_precision"]["estimate"] == 0.5
    assert live["auto_accept_precision"]["n"] == 2
    assert (live["auto_accepted"], live["audited"], live["audits_resolved"]) == (3, 2, 2)
    # Nothing sent to review has been reviewed: leaf accuracy stays unknown.
    assert live["leaf_accuracy"] is None
    assert m1["held_out_leaf_accuracy"] == 0.9 and m1["promotion"] is None


def test_compare_and_promote_over_http(api_server, api_client, tmp_path, tmp_path_factory):
    from worker.support import make_bundle, shared_model

    from catalog_ai.services.models import activate_model, register_model

    photos, bundle_a = shared_model(tmp_path_factory)
    bundle_b = make_bundle(tmp_path / "b", photos, seed=3)
    with unit_of_work() as s:
        a = register_model(s, Path(bundle_a.path), add_categories=True).version
        b = register_model(s, Path(bundle_b.path), add_categories=True).version
        activate_model(s, a, dispatcher=None)
    admin = api_client("admin")
    compared = admin.post("/v1/models/compare", json={"a": a, "b": b, "bootstrap": 50})
    assert compared.status_code == 409, compared.text
    assert compared.json()["type"].endswith("nothing-to-compare")
    missing = admin.post("/v1/models/compare", json={"a": a, "b": "nope"})
    assert missing.status_code == 404
    promoted = admin.post(f"/v1/models/{b}/promote-if-better", json={"bootstrap": 50})
    assert promoted.status_code == 200, promoted.text
    body = promoted.json()
    assert (body["promoted"], body["against"]) == (False, a)
    assert "kept inactive" in body["reason"]
    listed = {m["version"]: m for m in admin.get("/v1/models").json()["models"]}
    assert listed[b]["promotion"]["reason"] == body["reason"] and not listed[b]["is_active"]
    assert api_client("read").post("/v1/models/compare", json={"a": a, "b": b}).status_code == 403
