"""The per-key rate limit over HTTP: 429 with Retry-After past the limit, RateLimit-* headers
before it, one key's traffic not counted against another's, and one window shared by two API
servers on one database (as two API processes share it)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import pytest

from api.conftest import serving

pytestmark = pytest.mark.integration


def _not_near_a_minute_boundary(needed_s: float = 8.0) -> None:
    # The window is the clock's minute: a test that straddles one would see the count restart.
    second = datetime.now(UTC).second + datetime.now(UTC).microsecond / 1e6
    if second > 60 - needed_s:
        time.sleep(60 - second + 0.1)


def test_past_the_limit_requests_are_429_with_retry_after(api_server, api_key):
    limited = api_key("read", rate_limit=3)
    other = api_key("read", rate_limit=3)
    _not_near_a_minute_boundary()
    with httpx.Client(base_url=api_server.url, timeout=30) as client:
        answers = [
            client.get("/v1/categories", headers={"Authorization": f"Bearer {limited}"})
            for _ in range(4)
        ]
        unaffected = client.get("/v1/categories", headers={"Authorization": f"Bearer {other}"})
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert [r.headers["ratelimit-remaining"] for r in answers[:3]] == ["2", "1", "0"]
    assert {r.headers["ratelimit-limit"] for r in answers} == {"3"}
    refused = answers[3]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "https://catalog-ai.dev/problems/rate-limited"
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert unaffected.status_code == 200


def test_two_api_servers_share_one_window(api_server, api_key):
    token = api_key("read", rate_limit=4)
    headers = {"Authorization": f"Bearer {token}"}
    _not_near_a_minute_boundary()
    with serving() as second_url:
        statuses = []
        for i in range(5):
            base = api_server.url if i % 2 == 0 else second_url
            statuses.append(httpx.get(f"{base}/v1/categories", headers=headers).status_code)
    assert statuses == [200, 200, 200, 200, 429]
