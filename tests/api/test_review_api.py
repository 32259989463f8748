"""The review queue and verdicts over real HTTP on a real PostgreSQL: least confident first with
the dashboard's filters, every verdict recorded with the key's owner, conflicts as 409."""

from __future__ import annotations

import threading

import pytest
from helpers import image_row
from sqlalchemy import select

from catalog_ai.db import Category, ModelVersion, Product, ProductStatus, Suggestion, unit_of_work
from catalog_ai.services.catalog_import import sync_taxonomy
from catalog_ai.taxonomy import Taxonomy

pytestmark = pytest.mark.integration

PATHS = ["Fruit > Apple > Green", "Fruit > Apple > Red", "Fruit > Banana", "Veg > Carrot"]


@pytest.fixture
def waiting(api_server) -> dict[str, int]:
    """Products waiting for review (title -> id), suggested by two model versions."""
    with unit_of_work() as s:
        sync_taxonomy(s, Taxonomy.from_paths(PATHS), source="import:test")
        cats = {c.path: c.id for c in s.scalars(select(Category))}
        models = {}
        for version in ("m1", "m2"):
            models[version] = ModelVersion(
                version=version,
                backbone="tiny-cnn",
                bundle_path=f"/{version}",
                taxonomy_fingerprint="f",
            )
            s.add(models[version])
        s.flush()
        ids = {}
        for title, path, confidence, version, source, open_set in [
            ("green", "Fruit > Apple > Green", 0.6, "m1", "head", False),
            ("red", "Fruit > Apple > Red", 0.5, "m1", "head", False),
            ("banana", "Fruit > Banana", 0.3, "m2", "prototype", False),
            ("carrot", "Veg > Carrot", 0.2, "m1", "head", True),
            ("unsure", "", 0.1, "m1", "abstain", False),
        ]:
            product = Product(title=title, status=ProductStatus.SUGGESTED)
            product.images.append(image_row(title))
            s.add(product)
            s.flush()
            levels = [[{"path": path.split(" > ")[0], "probability": confidence}]] if path else []
            s.add(
                Suggestion(
                    product_id=product.id,
                    model_version_id=models[version].id,
                    category_id=cats.get(path),
                    path=path,
                    levels=levels,
                    confidence=confidence,
                    source=source,
                    open_set=open_set,
                )
            )
            ids[title] = product.id
    return ids


def _titles(body) -> list[str]:
    return [item["title"] for item in body["items"]]


def test_the_queue_is_least_confident_first_with_the_dashboard_filters(waiting, api_client):
    reader = api_client("read", rate_limit=10_000)
    body = reader.get("/v1/review-queue").json()
    assert _titles(body) == ["unsure", "carrot", "banana", "red", "green"] and body["total"] == 5
    first = body["items"][1]
    assert first["url"] == f"/v1/products/{waiting['carrot']}" and first["open_set"] is True
    assert first["levels"] == [[{"path": "Veg", "probability": 0.2}]]
    assert first["photo_url"].startswith(f"/v1/products/{waiting['carrot']}/photos/")
    assert _titles(reader.get("/v1/review-queue?branch=Fruit > Apple").json()) == ["red", "green"]
    assert _titles(reader.get("/v1/review-queue?model_version=m2").json()) == ["banana"]
    assert _titles(reader.get("/v1/review-queue?source=open_set").json()) == ["carrot"]
    assert _titles(reader.get("/v1/review-queue?source=abstain").json()) == ["unsure"]
    page = reader.get("/v1/review-queue?limit=2&offset=1").json()
    assert _titles(page) == ["carrot", "banana"] and page["total"] == 5
    bad = reader.get("/v1/review-queue?source=oracle")
    assert bad.status_code == 422 and bad.json()["field"] == "source"


def test_every_verdict_is_recorded_with_the_keys_owner(waiting, api_client):
    reviewer = api_client("review", owner="alice@shop.example")
    reader = api_client("read", rate_limit=10_000)

    def review(title: str, **verdict):
        r = reviewer.post(f"/v1/products/{waiting[title]}/review", json=verdict)
        assert r.status_code == 200, r.text
        return r.json()

    assert review("green", action="accept")["action"] == "accept"
    partial = review("red", action="accept", depth=2)
    assert (partial["action"], partial["category_path"]) == ("accept_partial", "Fruit > Apple")
    moved = review("banana", action="move", category_path="Veg > Carrot", note="it is orange")
    assert (moved["action"], moved["category_path"]) == ("correct", "Veg > Carrot")
    created = review("unsure", action="new_category", category_path="Veg > Leek")
    assert (created["action"], created["category_path"]) == ("new_category", "Veg > Leek")
    rejected = review("carrot", action="reject")
    assert (rejected["status"], rejected["category_path"]) == ("rejected", None)
    assert reader.get("/v1/review-queue").json() == {"total": 0, "items": []}
    product = reader.get(f"/v1/products/{waiting['banana']}").json()
    assert product["status"] == "accepted"
    label = product["label"]
    assert (label["label_source"], label["category_path"]) == ("review", "Veg > Carrot")
    assert (label["reviewed_by"], label["review_action"]) == ("alice@shop.example", "correct")
    assert product["history"]["reviews"][-1]["note"] == "it is orange"
    leek = reader.get("/v1/products?branch=Veg > Leek").json()["items"]
    assert [item["id"] for item in leek] == [waiting["unsure"]]


@pytest.mark.parametrize(
    ("verdict", "status", "field"),
    [
        ({"action": "move"}, 422, "category_path"),
        ({"action": "reject", "depth": 1}, 422, "depth"),
        ({"action": "accept", "depth": 0}, 422, "depth"),
        ({"action": "approve"}, 422, "action"),
        ({"action": "move", "category_path": "Fruit > Cherry"}, 422, "category_path"),
        ({"action": "new_category", "category_path": "Fruit > Banana"}, 422, "category_path"),
        ({"action": "accept", "depth": 5}, 422, "depth"),
    ],
)
def test_verdicts_that_cannot_work_are_problems(waiting, api_client, verdict, status, field):
    r = api_client("review").post(f"/v1/products/{waiting['green']}/review", json=verdict)
    assert r.status_code == status and r.headers["content-type"] == "application/problem+json"
    assert r.json().get("field") == field and r.json()["fix"]
    with unit_of_work() as s:
        assert s.get(Product, waiting["green"]).status == ProductStatus.SUGGESTED


def test_a_product_the_model_abstained_on_needs_a_category_not_an_accept(waiting, api_client):
    r = api_client("review").post(
        f"/v1/products/{waiting['unsure']}/review", json={"action": "accept"}
    )
    assert r.status_code == 422 and "abstained" in r.json()["detail"]
    assert r.json()["type"].endswith("/review-refused") and r.json()["fix"]


def test_unknown_products_and_scopes(waiting, api_client):
    reviewer = api_client("review")
    missing = reviewer.post("/v1/products/999999/review", json={"action": "reject"})
    assert missing.status_code == 404
    writer = api_client("write")
    refused = writer.post(f"/v1/products/{waiting['green']}/review", json={"action": "reject"})
    assert refused.status_code == 403
    assert writer.get("/v1/review-queue").status_code == 200  # the queue is a read


def test_two_reviewers_of_one_product_at_once_one_wins_the_other_gets_409(waiting, api_client):
    clients = [api_client("review", owner=name) for name in ("alice", "bob")]
    url = f"/v1/products/{waiting['red']}/review"
    start = threading.Barrier(len(clients))
    codes: list[int] = []

    def act(client, verdict) -> None:
        start.wait(10)
        codes.append(client.post(url, json=verdict).status_code)

    threads = [
        threading.Thread(target=act, args=(clients[0], {"action": "accept"})),
        threading.Thread(target=act, args=(clients[1], {"action": "reject"})),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(codes) == [200, 409]
    again = clients[0].post(url, json={"action": "accept"})
    assert again.status_code == 409 and again.json()["type"].endswith("/review-conflict")
    assert "reload the queue" in again.json()["detail"]
