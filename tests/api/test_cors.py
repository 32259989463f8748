"""CORS for a shop's admin pages (``CATALOG_AI_API_CORS_ORIGINS``): a listed origin may call the
API from a browser, with its key; another origin, and any origin when none is listed, is not
told it may."""

from __future__ import annotations

import httpx
import pytest

from catalog_ai.errors import ConfigError
from catalog_ai.settings import Settings

SHOP = "https://admin.shop.example"


@pytest.fixture
def cors_origins(monkeypatch):
    monkeypatch.setenv("CATALOG_AI_API_CORS_ORIGINS", f"{SHOP}/, http://localhost:3000")


def _preflight(url: str, origin: str) -> httpx.Response:
    return httpx.options(
        f"{url}/v1/classify",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    )


@pytest.mark.integration
def test_a_listed_origin_may_call_the_api_from_a_browser(cors_origins, api_server, api_client):
    allowed = _preflight(api_server.url, SHOP)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == SHOP
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    response = api_client("read").get("/v1/categories", headers={"Origin": SHOP})
    assert response.headers["access-control-allow-origin"] == SHOP
    assert "ratelimit-remaining" in response.headers["access-control-expose-headers"].lower()
    other = _preflight(api_server.url, "https://evil.example")
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.integration
def test_without_origins_no_browser_is_allowed(api_server):
    response = _preflight(api_server.url, SHOP)
    assert "access-control-allow-origin" not in response.headers


def test_origins_are_checked_and_normalised():
    settings = Settings.from_env({"CATALOG_AI_API_CORS_ORIGINS": f" {SHOP}/ ,http://a:3000"})
    assert settings.api_cors_origins == (SHOP, "http://a:3000")
    with pytest.raises(ConfigError, match=r"CATALOG_AI_API_CORS_ORIGINS: 'admin\.shop\.example'"):
        Settings.from_env({"CATALOG_AI_API_CORS_ORIGINS": "admin.shop.example"})
