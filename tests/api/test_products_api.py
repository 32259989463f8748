"""``/v1/products`` over real HTTP on a real PostgreSQL: create (idempotent by external id and by
Idempotency-Key, a bad photo failing alone, 413/415/409 when no photo is usable), read in full,
serve every photo, list by keyset pages with filters."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sqlalchemy import func, select
from worker.support import png_bytes

from catalog_ai.db import Product, ProductImage, unit_of_work
from catalog_ai.settings import reset_settings

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


def _png(seed: int, size: int = 40) -> bytes:
    return png_bytes((40 * seed % 256, 120, 60), np.random.default_rng(seed), size=size)


def _files(*photos: tuple[str, bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("photos", (name, data, "image/png")) for name, data in photos]


def _count(model) -> int:
    with unit_of_work() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_a_product_with_several_photos_is_accepted_and_shown_in_full(api_server, api_client):
    writer, reader = api_client("write"), api_client("read")
    front, back = _png(1), _png(2)
    r = writer.post(
        "/v1/products",
        files=_files(("front.png", front), ("back.png", back)),
        data={
            "title": "Blue mug",
            "description": "350 ml",
            "external_id": "SKU-1",
            "attributes": '{"vendor": "Acme", "tags": ["kitchen"]}',
        },
    )
    assert r.status_code == 202, r.text
    body = r.json()
    assert r.headers["Location"] == body["url"] == f"/v1/products/{body['id']}"
    assert body["created"] is True and body["status"] == "pending"
    assert [p["problem"] for p in body["photos"]] == [None, None]
    product = reader.get(body["url"]).json()
    assert (product["title"], product["description"], product["external_id"]) == (
        "Blue mug",
        "350 ml",
        "SKU-1",
    )
    assert product["attributes"] == {"vendor": "Acme", "tags": ["kitchen"]}
    assert [p["position"] for p in product["photos"]] == [0, 1]
    assert [p["url"] for p in product["photos"]] == [p["url"] for p in body["photos"]]
    assert product["decision"] is None and product["label"] is None  # no model is active
    for photo, data in zip(product["photos"], [front, back], strict=True):
        served = reader.get(photo["url"])
        assert served.status_code == 200 and served.content == data
        assert served.headers["content-type"] == "image/png"
        assert (photo["width"], photo["height"], photo["format"]) == (40, 40, "PNG")


def test_the_same_external_id_again_is_the_same_product(api_server, api_client):
    writer = api_client("write")
    files = _files(("a.png", _png(3)))
    first = writer.post("/v1/products", files=files, data={"external_id": "SKU-2"}).json()
    again = writer.post("/v1/products", files=files, data={"external_id": "SKU-2"})
    assert again.status_code == 202
    assert (again.json()["id"], again.json()["created"]) == (first["id"], False)
    assert again.json()["photos"] == first["photos"] and _count(Product) == 1


def test_idempotency_key_replays_the_answer_and_refuses_another_request(api_server, api_client):
    writer = api_client("write")
    files = _files(("a.png", _png(4)), ("junk.png", b"not a photo at all"))
    headers = {"Idempotency-Key": "order-17-upload"}
    first = writer.post("/v1/products", files=files, data={"title": "T"}, headers=headers)
    again = writer.post("/v1/products", files=files, data={"title": "T"}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.json()["id"] == first.json()["id"] and _count(Product) == 1
    assert [p["image_id"] for p in again.json()["photos"]] == [
        p["image_id"] for p in first.json()["photos"]
    ]
    other = writer.post("/v1/products", files=files, data={"title": "U"}, headers=headers)
    assert other.status_code == 422 and other.headers["content-type"] == PROBLEM
    assert other.json()["type"].endswith("/idempotency-key-reused")
    # Keys belong to an API key: another key may use the same string for its own request.
    mine = api_client("write").post(
        "/v1/products", files=_files(("b.png", _png(5))), headers=headers
    )
    assert mine.status_code == 202 and mine.json()["created"] and _count(Product) == 2


def test_a_bad_photo_fails_alone(api_server, api_client):
    r = api_client("write").post(
        "/v1/products", files=_files(("good.png", _png(6)), ("notes.png", b"shopping list\n"))
    )
    assert r.status_code == 202, r.text
    good, bad = r.json()["photos"]
    assert good["image_id"] is not None and good["problem"] is None
    assert bad["image_id"] is None and bad["problem"] == "not_a_photo"
    assert "not an image file" in bad["error"]
    assert _count(ProductImage) == 1


def test_without_a_usable_photo_nothing_is_stored(api_server, api_client, monkeypatch):
    writer = api_client("write", rate_limit=10_000)
    r = writer.post("/v1/products", files=_files(("notes.png", b"just text\n")))
    assert r.status_code == 415 and r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["type"].endswith("/not-a-photo") and body["field"] == "photos[0]"
    assert body["errors"][0]["problem"] == "not_a_photo" and body["fix"]
    # One photo too large (the limit lowered below it), one not a photo: 413, for the large one.
    big = _png(7, size=120)
    monkeypatch.setenv("CATALOG_AI_MAX_IMAGE_BYTES", str(len(big) - 1))
    reset_settings()
    r = writer.post("/v1/products", files=_files(("text.png", b"text\n"), ("big.png", big)))
    assert r.status_code == 413 and r.json()["field"] == "photos[1]"
    assert "above the" in r.json()["detail"]
    monkeypatch.delenv("CATALOG_AI_MAX_IMAGE_BYTES")
    reset_settings()
    # A pixel bomb is too large too, as on the other photo routes.
    bomb = writer.post("/v1/products", files=_files(("bomb.png", _bomb())))
    assert bomb.status_code == 413, bomb.text
    assert _count(Product) == 0
    # Every photo already another product's, under a new external id: 409 naming the product.
    owner = writer.post("/v1/products", files=_files(("a.png", _png(8)))).json()
    r = writer.post("/v1/products", files=_files(("a.png", _png(8))), data={"external_id": "N"})
    assert r.status_code == 409 and r.json()["errors"][0]["duplicate_of"] == owner["id"]
    # Without an external id the same photo again is that product again.
    again = writer.post("/v1/products", files=_files(("copy.png", _png(8))))
    assert again.status_code == 202 and (again.json()["id"], again.json()["created"]) == (
        owner["id"],
        False,
    )
    assert _count(Product) == 1


def _bomb() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"attributes": "[1, 2]"}, "attributes"),
        ({"attributes": "{not json"}, "attributes"),
        ({"external_id": "  "}, "external_id"),
        ({"title": "x" * 513}, "title"),
    ],
)
def test_invalid_fields_are_problems_naming_the_field(api_server, api_client, data, field):
    r = api_client("write").post("/v1/products", files=_files(("a.png", _png(9))), data=data)
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    assert r.json()["field"] == field and _count(Product) == 0


def test_no_photos_and_unknown_products_are_problems(api_server, api_client):
    writer, reader = api_client("write"), api_client("read")
    r = writer.post("/v1/products", data={"title": "no photo"})
    assert r.status_code == 422 and r.json()["field"] == "photos"
    missing = reader.get("/v1/products/999999")
    assert missing.status_code == 404 and missing.json()["type"].endswith("/product-not-found")
    pid = writer.post("/v1/products", files=_files(("a.png", _png(10)))).json()["id"]
    other = writer.post("/v1/products", files=_files(("b.png", _png(11)))).json()
    stranger = f"/v1/products/{pid}/photos/{other['photos'][0]['image_id']}"
    assert reader.get(stranger).status_code == 404
    # A photo whose file left the media store: a problem naming the fix, not a 500.
    photo = reader.get(f"/v1/products/{pid}").json()["photos"][0]
    for path in api_server.media_dir.rglob(f"{photo['content_hash']}.*"):
        path.unlink()
    gone = reader.get(photo["url"])
    assert gone.status_code == 404 and gone.json()["type"].endswith("/photo-file-missing")


def test_pages_follow_next_with_the_filters_kept(api_server, api_client):
    writer, reader = api_client("write", rate_limit=10_000), api_client("read", rate_limit=10_000)
    ids = [
        writer.post("/v1/products", files=_files((f"p{i}.png", _png(20 + i)))).json()["id"]
        for i in range(5)
    ]
    seen, url, pages = [], "/v1/products?limit=2&status=pending", 0
    while url:
        r = reader.get(url)
        assert r.status_code == 200, r.text
        seen += [item["id"] for item in r.json()["items"]]
        url = r.json()["next"]
        pages += 1
        if url:
            assert "status=pending" in url and r.headers["Link"] == f'<{url}>; rel="next"'
    assert seen == ids and pages == 3
    assert reader.get("/v1/products?status=accepted").json() == {"items": [], "next": None}
    bad = reader.get("/v1/products?cursor=garbage")
    assert bad.status_code == 422 and "next" in bad.json()["fix"]
    assert reader.get("/v1/products?source=oracle").status_code == 422


def test_a_classified_product_shows_its_decision_as_stored(api_server, api_client, active_model):
    writer, reader = api_client("write"), api_client("read", rate_limit=10_000)
    photos = [(p.name, p.read_bytes()) for p in active_model.photos[:2]]
    pid = writer.post("/v1/products", files=_files(*photos)).json()["id"]
    deadline = time.monotonic() + 120
    while (product := reader.get(f"/v1/products/{pid}").json())["decision"] is None:
        assert time.monotonic() < deadline, product
        time.sleep(0.2)
    decision = product["decision"]
    assert decision["model_version"] == active_model.version
    with unit_of_work() as session:
        from catalog_ai.db import Suggestion

        row = session.get(Suggestion, decision["suggestion_id"])
        assert decision["levels"] == row.levels and decision["confidence"] == row.confidence
        assert (decision["path"], decision["source"]) == (row.path, row.source.value)
        assert decision["flags"]["open_set"] == row.open_set
        assert decision["memory_revision"] == row.memory_revision
    assert product["status"] in {"suggested", "accepted"}
    assert [s["suggestion_id"] for s in product["history"]["suggestions"]] == [
        decision["suggestion_id"]
    ]
    listed = reader.get(f"/v1/products?model_version={active_model.version}").json()["items"]
    assert [item["id"] for item in listed] == [pid]
