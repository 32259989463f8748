"""The scope matrix: every route of the application, against no key and a key of each scope.

Routes are read from the application itself (:func:`catalog_ai.api.routers.api_routes`), so a
route added later is covered without touching this file. Without a key: 401; with a key below
the route's scope: 403; with one at or above it: neither (whatever the route then answers
about the request itself: 200, 404, 409, 422, ...).
"""

from __future__ import annotations

import re

import httpx
import pytest

from catalog_ai.api.deps import route_scope
from catalog_ai.api.routers import api_routes
from catalog_ai.db import ApiScope
from catalog_ai.services.api_keys import SCOPE_ORDER

pytestmark = pytest.mark.integration

#: The only routes anyone may call without a key (see catalog_ai/api/routers/system.py).
OPEN_ROUTES = {("GET", "/v1/health"), ("GET", "/metrics")}


def _operations() -> list[tuple[str, str, ApiScope | None]]:
    return sorted(
        (method, route.path, route_scope(route))
        for route in api_routes()
        for method in route.methods or ()
        if method != "HEAD"
    )


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_every_route_but_health_and_metrics_needs_a_key():
    unscoped = {(m, p) for m, p, scope in _operations() if scope is None}
    assert unscoped == OPEN_ROUTES


def test_the_scope_matrix(api_server, api_key):
    tokens = {scope: api_key(scope.value, rate_limit=10_000) for scope in SCOPE_ORDER}
    rows = []
    with httpx.Client(base_url=api_server.url, timeout=60) as client:
        for method, path, needed in _operations():
            url = _concrete(path)
            anonymous = client.request(method, url)
            if needed is None:
                assert anonymous.status_code not in (401, 403), (method, path)
                continue
            assert anonymous.status_code == 401, (method, path, anonymous.text)
            for scope in SCOPE_ORDER:
                response = client.request(
                    method, url, headers={"Authorization": f"Bearer {tokens[scope]}"}
                )
                allowed = SCOPE_ORDER.index(scope) >= SCOPE_ORDER.index(needed)
                if allowed:
                    assert response.status_code not in (401, 403), (method, path, scope.value)
                else:
                    assert response.status_code == 403, (method, path, scope.value, response.text)
                    assert response.json()["type"].endswith("/insufficient-scope")
                rows.append((method, path, scope.value, response.status_code))
    # Every scope was tried on every keyed route, and the admin-only route refused the others.
    keyed = [op for op in _operations() if op[2] is not None]
    assert len(rows) == len(keyed) * len(SCOPE_ORDER)
    assert ("POST", "/v1/models/{version}/activate", "review", 403) in rows
