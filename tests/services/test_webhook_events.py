"""The emission points: classification, review and activation write their webhook events in
their own transaction, with the payloads the README documents, and only for subscribers."""

from __future__ import annotations

from sqlalchemy import select
from webhook_receiver import Recorder
from worker.support import activate, bad_files

from catalog_ai.db import (
    Category,
    ModelVersion,
    Product,
    ProductStatus,
    Suggestion,
    WebhookDelivery,
    WebhookEvent,
    unit_of_work,
)
from catalog_ai.services.review import accept, correct, reject
from catalog_ai.services.webhooks import EVENT_TYPES, add_webhook
from catalog_ai.worker.pipeline import classify_chunk
from services.classify_support import all_products, ingest


def _events(kind: str | None = None) -> list[dict]:
    with unit_of_work() as session:
        q = select(WebhookEvent).order_by(WebhookEvent.id)
        if kind is not None:
            q = q.where(WebhookEvent.type == kind)
        return [e.payload for e in session.scalars(q)]


def _delivery_ids() -> list[int]:
    with unit_of_work() as session:
        return list(session.scalars(select(WebhookDelivery.id).order_by(WebhookDelivery.id)))


def test_activation_emits_model_activated_once(catalog, model):
    _, bundle = model
    with unit_of_work() as session:
        add_webhook(session, "https://shop.example/h", "model.activated")
    recorder = Recorder()
    version = activate(bundle.path, dispatcher=recorder)
    activate(bundle.path, dispatcher=recorder)  # already active: no new event
    (event,) = _events()
    with unit_of_work() as session:
        row = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
    assert event["type"] == "model.activated"
    assert event["data"] == {
        "version": version,
        "backbone": row.backbone,
        "metrics": row.metrics,
        "activated_at": row.activated_at.isoformat(),
    }
    assert recorder.delivered == [_delivery_ids()]


def test_classification_emits_each_new_suggestion_acceptance_and_failure(catalog, model, tmp_path):
    photos, bundle = model
    version = activate(bundle.path)
    with unit_of_work() as session:
        add_webhook(session, "https://shop.example/all", ",".join(EVENT_TYPES))
        add_webhook(session, "https://shop.example/failures", "product.failed")
    ids = ingest(catalog, [*photos[:12], bad_files(tmp_path)["corrupt"]])
    recorder = Recorder()
    summary = classify_chunk(ids, dispatcher=recorder)
    assert summary.failed == 1 and summary.accepted and summary.suggested
    products = all_products()
    with unit_of_work() as session:
        suggestions = {s.product_id: s for s in session.scalars(select(Suggestion))}
        paths = dict(session.execute(select(Category.id, Category.path)).all())
        external = dict(session.execute(select(Category.id, Category.external_id)).all())

    created = {e["data"]["product_id"]: e for e in _events("suggestion.created")}
    assert set(created) == set(suggestions)  # one per new suggestion, none for the failure
    for pid, event in created.items():
        s = suggestions[pid]
        assert event["data"]["external_id"] == products[pid].external_id
        assert event["data"]["suggestion"] == {
            "id": s.id,
            "path": s.path,
            "levels": s.levels,
            "confidence": s.confidence,
            "source": str(s.source),
            "open_set": s.open_set,
            "category_id": s.category_id,
            "model_version": version,
            "memory_revision": s.memory_revision,
            "created_at": s.created_at.isoformat(),
        }
    accepted = {e["data"]["product_id"]: e["data"] for e in _events("product.accepted")}
    assert set(accepted) == {p for p, row in products.items() if row.status == "accepted"}
    for pid, data in accepted.items():
        category_id = products[pid].category_id
        assert data["category"] == {
            "id": category_id,
            "path": paths[category_id],
            "external_id": external[category_id],
        }
        assert data["label_source"] == "model" and data["decided_by"] == "model"
        assert data["reviewer"] is None and data["model_version"] == version
    (failed,) = _events("product.failed")
    failed_id = next(p for p, row in products.items() if row.status == ProductStatus.FAILED)
    assert failed["data"] == {
        "product_id": failed_id,
        "external_id": None,
        "error": products[failed_id].error,
    }
    # One delivery per event and subscriber (the failure goes to both), handed over in full.
    events = len(created) + len(accepted) + 1
    assert len(_delivery_ids()) == events + 1
    assert sorted(i for batch in recorder.delivered for i in batch) == _delivery_ids()
    assert len({e["event_id"] for e in _events()}) == events


def test_without_subscribers_classification_writes_no_event(catalog, model):
    photos, bundle = model
    with unit_of_work() as session:
        add_webhook(session, "https://shop.example/h", "model.activated")
    activate(bundle.path)
    classify_chunk(ingest(catalog, photos[:6]))
    assert [e["type"] for e in _events()] == ["model.activated"]


def test_a_reviewer_verdict_emits_product_accepted_and_a_rejection_nothing(catalog, model):
    photos, bundle = model
    version = activate(bundle.path)
    classify_chunk(ingest(catalog, photos[:16]))
    waiting = sorted(p for p, row in all_products().items() if row.status == "suggested")
    assert len(waiting) >= 3
    with unit_of_work() as session:
        add_webhook(session, "https://shop.example/h", "product.accepted")
        leaf = session.scalar(select(Category.path).where(Category.depth == 2))
    recorder = Recorder()
    with unit_of_work() as session:
        reject(session, waiting[0], reviewer="alice")
    assert _events() == []
    with unit_of_work() as session:
        correct(session, waiting[1], reviewer="alice", category_path=leaf, dispatcher=recorder)
        assert recorder.delivered == []
    with unit_of_work() as session:
        accept(session, waiting[2], reviewer="bob", depth=1)  # no dispatcher: the sweep sends
    first, second = (e["data"] for e in _events("product.accepted"))
    with unit_of_work() as session:
        top = session.get(Product, waiting[2]).category.path
    assert first["product_id"] == waiting[1] and first["category"]["path"] == leaf
    assert first["decided_by"] == first["reviewer"] == "alice"
    assert first["label_source"] == "review" and first["model_version"] == version
    assert second["product_id"] == waiting[2] and second["category"]["path"] == top
    assert second["reviewer"] == "bob"
    assert len(recorder.delivered) == 1 and len(_delivery_ids()) == 2
