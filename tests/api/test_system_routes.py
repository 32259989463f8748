"""The non-product routes over real HTTP: health, metrics, categories, models (list, activate),
classify (the Decision a worker would record, nothing stored) and search."""

from __future__ import annotations

import httpx
import pytest
from helpers import DECISION_KEYS  # the keys of Decision.to_dict, written once

from catalog_ai.db import unit_of_work
from catalog_ai.inference.predictor import Predictor
from catalog_ai.services.health import status_counts

pytestmark = pytest.mark.integration


def test_health_reports_the_database_and_the_in_process_runner(api_server):
    body = httpx.get(f"{api_server.url}/v1/health").json()
    assert body["status"] == "ok" and body["problems"] == []
    assert body["broker"]["broker"] == "in-process"
    assert body["queue_depth"] == 0
    assert body["products"]["pending"] == 0


def test_health_is_503_when_the_broker_is_unreachable(api_server, monkeypatch):
    from catalog_ai.settings import reset_settings
    from catalog_ai.worker.app import configure

    monkeypatch.setenv("CATALOG_AI_BROKER_URL", "redis://127.0.0.1:1/10")  # nothing listens
    reset_settings()
    configure()
    try:
        response = httpx.get(f"{api_server.url}/v1/health", timeout=60)
    finally:
        monkeypatch.delenv("CATALOG_AI_BROKER_URL")
        reset_settings()
        configure()
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "unhealthy" and body["broker"]["ok"] is False
    assert "broker" in body["problems"][0]


def test_health_is_503_when_no_worker_answers_the_real_broker(api_server, redis_url, monkeypatch):
    # redis_url: the session fixture of tests/conftest.py (skips, or fails under CI, without
    # Redis). Not `from conftest import ...`: with the plugins' tests collected too, "conftest"
    # may be another directory's module.
    import redis

    from catalog_ai.settings import reset_settings
    from catalog_ai.worker.app import configure

    broker = redis_url.rsplit("/", 1)[0] + "/10"  # the API tests' Redis database
    client = redis.Redis.from_url(broker)
    client.flushdb()
    client.close()
    monkeypatch.setenv("CATALOG_AI_BROKER_URL", broker)
    reset_settings()
    configure()
    try:
        response = httpx.get(f"{api_server.url}/v1/health", timeout=60)
        metrics = httpx.get(f"{api_server.url}/metrics", timeout=60).text
    finally:
        monkeypatch.delenv("CATALOG_AI_BROKER_URL")
        reset_settings()
        configure()
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["broker"]["ok"] is True and body["broker"]["workers"] == []
    assert body["queue_depth"] == body["broker"]["queued"] == 0
    assert body["problems"] == [
        "no worker answers a ping: uploads wait until one runs (catalog-ai worker)"
    ]
    assert "catalog_ai_workers 0.0" in metrics


def test_metrics_count_requests_by_route_template_and_read_the_catalog(api_server, api_client):
    client = api_client("read")
    for _ in range(3):
        assert client.get("/v1/models").status_code == 200
    text = httpx.get(f"{api_server.url}/metrics").text
    line = next(
        x
        for x in text.splitlines()
        if x.startswith("catalog_ai_api_requests_total{")
        and 'route="/v1/models"' in x
        and 'status="200"' in x
    )
    assert float(line.rsplit(" ", 1)[1]) >= 3
    assert 'catalog_ai_products{status="pending"} 0.0' in text
    assert "catalog_ai_queue_depth 0.0" in text


def test_models_are_listed_and_an_admin_key_activates_one(api_server, api_client, active_model):
    listed = api_client("read").get("/v1/models").json()
    assert listed["active"] == active_model.version
    (model,) = listed["models"]
    assert model["is_active"] is True and model["backbone"]
    admin = api_client("admin")
    activated = admin.post(f"/v1/models/{active_model.version}/activate")
    assert activated.status_code == 200, activated.text
    assert activated.json()["version"] == active_model.version
    unknown = admin.post("/v1/models/no-such-version/activate")
    assert unknown.status_code == 404
    assert unknown.json()["type"].endswith("/model-version-not-found")


def test_classify_answers_the_workers_decision_and_stores_nothing(
    api_server, api_client, active_model
):
    photo = active_model.photos[3]
    response = api_client("read").post(
        "/v1/classify", files={"photo": (photo.name, photo.read_bytes(), "image/png")}
    )
    assert response.status_code == 200, response.text
    decision = response.json()["decision"]
    assert set(decision) == set(DECISION_KEYS)
    (expected,) = Predictor.load(active_model.bundle_path).predict([photo])
    assert expected.decision is not None
    assert decision == expected.decision.to_dict()
    with unit_of_work() as session:
        assert sum(status_counts(session).values()) == 0  # no product was made


def test_classify_without_an_active_model_is_409(api_server, api_client, tmp_path):
    from worker.support import make_photos

    (photo,) = make_photos(tmp_path, 1)
    response = api_client("read").post(
        "/v1/classify", files={"photo": ("p.png", photo.read_bytes())}
    )
    assert response.status_code == 409
    assert response.json()["type"].endswith("/no-active-model")


def test_categories_are_the_tree_in_order_with_counts(api_server, api_client, active_model):
    body = api_client("read").get("/v1/categories").json()
    paths = [c["path"] for c in body["categories"]]
    assert paths[:3] == ["Fruit", "Fruit > Apple", "Fruit > Apple > Green"]
    assert body["total"] == len(paths) == 7
    apple = next(c for c in body["categories"] if c["path"] == "Fruit > Apple")
    assert (apple["depth"], apple["parent_path"], apple["products"]) == (2, "Fruit", 0)
    assert len({c["id"] for c in body["categories"]}) == 7
    assert {c["external_id"] for c in body["categories"]} == {None}  # the model's tree has none
    branch = api_client("read").get("/v1/categories", params={"branch": "Fruit > Apple"}).json()
    assert [c["path"] for c in branch["categories"]] == paths[1:4]
    top = api_client("read").get("/v1/categories", params={"max_depth": 1}).json()
    assert [c["path"] for c in top["categories"]] == ["Fruit", "Veg"]


def test_search_refuses_nothing_and_both_and_searches_words(api_server, api_client, active_model):
    client = api_client("read")
    nothing = client.post("/v1/search", data={})
    assert nothing.status_code == 422 and nothing.json()["field"] == "text"
    photo = active_model.photos[0].read_bytes()
    both = client.post("/v1/search", data={"product_id": "1"}, files={"photo": ("p.png", photo)})
    assert both.status_code == 422 and both.json()["field"] == "product_id"
    words = client.post("/v1/search", data={"text": "apple"})
    assert words.status_code == 200, words.text
    assert words.json() == {"mode": "text", "model_version": None, "hits": []}
    unindexed = client.post("/v1/search", files={"photo": ("p.png", photo)})
    assert unindexed.status_code == 422, unindexed.text
    assert unindexed.json()["field"] == "photo"


def test_search_finds_the_product_a_photo_or_a_product_looks_like(
    api_server, api_client, active_model
):
    from catalog_ai.photos.store import MediaStore
    from catalog_ai.services.ingest import ingest_files
    from catalog_ai.services.search_index import build_index
    from catalog_ai.worker.dispatch import InProcessDispatcher

    runner = InProcessDispatcher(name="search-test")
    photos = active_model.photos[:6]
    with unit_of_work() as session:
        created = ingest_files(
            session, photos, media=MediaStore(api_server.media_dir), dispatcher=runner
        )
    assert runner.drain(timeout=120) and not runner.errors
    with unit_of_work() as session:
        build_index(session, None)  # the embeddings classification recorded, of the active model
    client = api_client("read")
    query = photos[2]
    by_photo = client.post("/v1/search", files={"photo": (query.name, query.read_bytes())})
    assert by_photo.status_code == 200, by_photo.text
    body = by_photo.json()
    assert (body["mode"], body["model_version"]) == ("photo", active_model.version)
    own = created.created[2]
    assert body["hits"][0]["product_id"] == own  # the photo itself is in the catalog
    by_product = client.post("/v1/search", data={"product_id": str(own), "limit": "3"})
    assert by_product.status_code == 200, by_product.text
    hits = by_product.json()["hits"]
    assert 1 <= len(hits) <= 3 and own not in {h["product_id"] for h in hits}
    missing = client.post("/v1/search", data={"product_id": "999999"})
    assert missing.status_code == 422 and missing.json()["field"] == "product_id"
