"""The outer bound on a request body, and the docs page served without a CDN (real server)."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest

from catalog_ai.settings import reset_settings


@pytest.fixture
def small_limit(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CATALOG_AI_API_MAX_REQUEST_BYTES", "4096")
    reset_settings()
    yield 4096
    monkeypatch.delenv("CATALOG_AI_API_MAX_REQUEST_BYTES")
    reset_settings()


@pytest.mark.integration
def test_a_body_over_the_limit_is_refused_before_it_is_read(
    api_server, api_client, small_limit
) -> None:
    with api_client("write") as client:
        r = client.post(
            "/v1/products",
            files={"photos": ("big.jpg", b"\xff" * (small_limit * 4), "image/jpeg")},
        )
        assert r.status_code == 413
        assert r.headers["content-type"] == "application/problem+json"
        body = r.json()
        assert body["type"].endswith("/request-too-large")
        assert body["field"] == "body"
        assert "CATALOG_AI_API_MAX_REQUEST_BYTES" in body["fix"]
        # A small request still goes through to the route (here: refused there, 415, not 413).
        r = client.post("/v1/products", files={"photos": ("x.jpg", b"not a photo", "image/jpeg")})
        assert r.status_code == 415


@pytest.mark.integration
def test_a_chunked_body_is_counted_as_it_arrives(api_server, api_key, small_limit) -> None:
    # No Content-Length: the middleware counts the chunks and stops past the limit.
    parts = urlsplit(api_server.url)
    token = api_key("write")
    chunk = b"a" * 1024
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        head = (
            b'--b\r\nContent-Disposition: form-data; name="photos"; filename="x.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n"
        )
        body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in [head] + [chunk] * 8)
        # One send of ~8 KiB: the server reads it whole, so it closes with nothing unread
        # (unread bytes would make its close a reset that can swallow the answer).
        sock.sendall(
            b"POST /v1/products HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n"
            + f"Authorization: Bearer {token}\r\n\r\n".encode()
            + body
            + b"0\r\n\r\n"
        )
        answer = b""
        while piece := sock.recv(65536):  # until the server closes (connection: close)
            answer += piece
    answer = answer.decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert "request-too-large" in answer
    assert answer.count("HTTP/1.1") == 1  # the route's own answer (to a "gone" client) dropped


@pytest.mark.integration
def test_the_docs_page_loads_every_asset_from_this_server(api_server) -> None:
    import httpx

    page = httpx.get(f"{api_server.url}/docs", timeout=30)
    assert page.status_code == 200
    assert "cdn.jsdelivr" not in page.text and "unpkg" not in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/docs/static/{asset}" in page.text
        r = httpx.get(f"{api_server.url}/docs/static/{asset}", timeout=30)
        assert r.status_code == 200 and len(r.content) > 10_000
    # Swagger UI 5 reads OpenAPI 3.1, which is what the API publishes.
    assert httpx.get(f"{api_server.url}/openapi.json").json()["openapi"].startswith("3.1")
