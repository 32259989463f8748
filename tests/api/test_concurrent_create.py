"""Concurrent ``POST /v1/products`` over real HTTP against the real PostgreSQL: many clients
sending one product at once (one external id, or one Idempotency-Key) make exactly one product,
and every client is told its id."""

from __future__ import annotations

import threading

import httpx
import numpy as np
import pytest
from sqlalchemy import func, select
from worker.support import png_bytes

from catalog_ai.db import IdempotencyKey, Product, ProductImage, unit_of_work

pytestmark = pytest.mark.integration

CLIENTS = 12


def _png(seed: int) -> bytes:
    return png_bytes((seed * 37 % 256, 80, 200), np.random.default_rng(seed))


def _all_at_once(api_server, token: str, requests: list[dict]) -> list[httpx.Response]:
    """Each request from its own client and thread, released together by a barrier."""
    start = threading.Barrier(len(requests))
    responses: list[httpx.Response | BaseException] = [RuntimeError("not sent")] * len(requests)

    def send(i: int) -> None:
        with httpx.Client(
            base_url=api_server.url, timeout=120, headers={"Authorization": f"Bearer {token}"}
        ) as client:
            start.wait(30)
            try:
                responses[i] = client.post("/v1/products", **requests[i])
            except BaseException as exc:  # reported below
                responses[i] = exc

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    errors = [r for r in responses if isinstance(r, BaseException)]
    assert errors == []
    return [r for r in responses if isinstance(r, httpx.Response)]


def _counts() -> tuple[int, int]:
    with unit_of_work() as s:
        return (
            s.scalar(select(func.count()).select_from(Product)),
            s.scalar(select(func.count()).select_from(ProductImage)),
        )


def test_one_external_id_from_many_clients_at_once_is_one_product(api_server, api_key):
    token = api_key("write", rate_limit=10_000)
    photos = [("front.png", _png(1)), ("back.png", _png(2))]
    # The same product, with its photos in different orders and some clients adding a third:
    # whatever arrives first is the product, every other request is answered with it.
    requests = [
        {
            "files": [
                ("photos", (n, d, "image/png")) for n, d in (photos if i % 2 else photos[::-1])
            ]
            + ([("photos", (f"extra-{i}.png", _png(100 + i), "image/png"))] if i % 3 == 0 else []),
            "data": {"external_id": "SKU-RACE", "title": f"attempt {i}"},
        }
        for i in range(CLIENTS)
    ]
    responses = _all_at_once(api_server, token, requests)
    assert [r.status_code for r in responses] == [202] * CLIENTS, [r.text for r in responses]
    bodies = [r.json() for r in responses]
    assert len({b["id"] for b in bodies}) == 1
    assert sorted(b["created"] for b in bodies) == [False] * (CLIENTS - 1) + [True]
    winner = next(b for b in bodies if b["created"])
    products, images = _counts()
    assert products == 1 and images == len(winner["photos"])


def test_one_idempotency_key_from_many_clients_at_once_is_one_product(api_server, api_key):
    token = api_key("write", rate_limit=10_000)
    request = {
        "files": [("photos", ("only.png", _png(3), "image/png"))],
        "data": {"title": "no external id"},
        "headers": {"Idempotency-Key": "retry-storm-1"},
    }
    responses = _all_at_once(api_server, token, [request] * CLIENTS)
    assert [r.status_code for r in responses] == [202] * CLIENTS, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    replayed = [r.headers.get("Idempotent-Replayed") == "true" for r in responses]
    assert replayed.count(False) == 1  # one request created it, the others were answered with it
    with unit_of_work() as s:
        assert s.scalar(select(func.count()).select_from(IdempotencyKey)) == 1
    assert _counts() == (1, 1)
