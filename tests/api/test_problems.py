"""Errors as application/problem+json (RFC 9457): the mapping of typed errors, photos too large
(413) or not photos (415) from the safe loader's own refusals, validation (422, every field),
unknown routes and methods, and an unexpected exception: a 500 problem naming no internals,
logged with its traceback."""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from worker.support import bad_files

from catalog_ai.api.problems import TYPE_BASE, Problem, from_error, photo_problem
from catalog_ai.db.queries import ModelVersionNotFound
from catalog_ai.errors import CatalogAIError, ImageError
from catalog_ai.photos.decode import probe
from catalog_ai.services.api_keys import InvalidToken
from catalog_ai.services.review import ReviewConflict, ReviewError

REQUIRED = {"type", "title", "status", "detail", "instance"}


@pytest.mark.parametrize(
    ("error", "status", "slug"),
    [
        (ReviewConflict("decided meanwhile; reload the queue"), 409, "review-conflict"),
        (ReviewError("bad verdict; give accept or reject"), 422, "review-refused"),
        (ModelVersionNotFound("no version 'x'; see models list"), 404, "model-version-not-found"),
        (InvalidToken("unknown key; create one"), 401, "invalid-api-key"),
        (CatalogAIError("something; do this"), 422, "invalid-request"),
    ],
)
def test_typed_errors_map_by_their_most_specific_class(error, status, slug):
    problem = from_error(error, field="x")
    assert (problem.status, problem.type, problem.field) == (status, TYPE_BASE + slug, "x")
    assert problem.fix == str(error).rpartition("; ")[2]
    assert ("WWW-Authenticate" in problem.headers) is (status == 401)


def test_a_message_without_a_fix_part_has_no_fix():
    assert Problem(409, "x", "plain message").fix is None


def test_the_loaders_refusals_become_413_or_415(tmp_path):
    files = bad_files(tmp_path)
    statuses = {}
    for kind, path in files.items():
        with pytest.raises(ImageError) as caught:
            probe(path.read_bytes(), source=path.name, max_pixels=1_000_000)
        statuses[kind] = photo_problem(caught.value).status
    assert statuses == {"empty": 415, "not_an_image": 415, "bomb": 413, "corrupt": 415}
    with pytest.raises(ImageError) as caught:
        from catalog_ai.photos.decode import read_bytes

        read_bytes(b"x" * 100, max_bytes=10)
    assert photo_problem(caught.value).status == 413


def _body(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert set(body) >= REQUIRED, body
    assert body["status"] == status and body["type"].startswith(TYPE_BASE)
    return body


@pytest.mark.integration
def test_http_errors_are_problems(api_server, api_client):
    client = api_client("read")
    missing = _body(client.get("/v1/no-such-thing"), 404)
    assert missing["instance"] == "/v1/no-such-thing" and missing["fix"]
    _body(client.delete("/v1/categories"), 405)
    invalid = _body(client.get("/v1/categories", params={"max_depth": "deep"}), 422)
    assert invalid["field"] == "max_depth"
    assert invalid["errors"][0]["in"] == "query"
    both = _body(client.get("/v1/categories", params={"max_depth": 0, "branch": "x" * 5000}), 422)
    assert {e["field"] for e in both["errors"]} == {"max_depth", "branch"}
    nowhere = _body(client.get("/v1/categories", params={"branch": "No > Such"}), 404)
    assert nowhere["field"] == "branch"


@pytest.mark.integration
def test_photos_too_large_or_not_photos_are_413_and_415(
    api_server, api_client, active_model, tmp_path, monkeypatch
):
    client = api_client("read")
    files = bad_files(tmp_path)
    for kind, status in (("not_an_image", 415), ("bomb", 413), ("corrupt", 415), ("empty", 415)):
        response = client.post(
            "/v1/classify", files={"photo": (files[kind].name, files[kind].read_bytes())}
        )
        body = _body(response, status)
        assert body["field"] == "photo", kind
    from catalog_ai.settings import reset_settings

    monkeypatch.setenv("CATALOG_AI_MAX_IMAGE_BYTES", "100")
    reset_settings()
    photo = active_model.photos[0].read_bytes()
    assert len(photo) > 100
    too_big = _body(client.post("/v1/classify", files={"photo": ("p.png", photo)}), 413)
    assert "CATALOG_AI_MAX_IMAGE_BYTES" in too_big["fix"]


def test_a_database_that_does_not_answer_is_a_503_problem_with_retry_after(tmp_path, monkeypatch):
    from catalog_ai.api.app import create_app
    from catalog_ai.settings import reset_settings

    # Nothing listens on port 1: the key's lookup fails to connect.
    monkeypatch.setenv("CATALOG_AI_HOME", str(tmp_path))
    monkeypatch.setenv("CATALOG_AI_DATABASE_URL", "postgresql+psycopg://u@127.0.0.1:1/none")
    reset_settings()
    try:
        response = TestClient(create_app(), raise_server_exceptions=False).get(
            "/v1/categories", headers={"Authorization": "Bearer cai_0123456789ab_" + "A" * 43}
        )
    finally:
        from catalog_ai.db import dispose_engines

        dispose_engines()
        reset_settings()
    body = _body(response, 503)
    assert body["type"] == TYPE_BASE + "database-unavailable"
    assert response.headers["retry-after"] == "5"


def test_an_unexpected_exception_is_a_logged_500_problem(caplog):
    from catalog_ai.api.app import create_app

    app = create_app()
    broken = APIRouter()

    @broken.get("/v1/broken")
    def fail() -> None:
        raise RuntimeError("secret internals")

    app.include_router(broken)
    with caplog.at_level(logging.ERROR, logger="catalog_ai.api.app"):
        response = TestClient(app, raise_server_exceptions=False).get("/v1/broken")
    body = _body(response, 500)
    assert "secret internals" not in response.text
    assert body["type"] == TYPE_BASE + "internal-error"
    assert any("secret internals" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)
