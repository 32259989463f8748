"""Keys over real HTTP: created, listed and revoked with the command line, sent as a bearer
token; 401 (with WWW-Authenticate: Bearer) without one, with a malformed, unknown or revoked
one; the last use recorded."""

from __future__ import annotations

import json

import httpx
import pytest
from click.testing import CliRunner

from catalog_ai.cli import cli

pytestmark = pytest.mark.integration


def _problem(response: httpx.Response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == f"https://catalog-ai.dev/problems/{slug}"
    assert body["status"] == status
    assert body["instance"] == response.request.url.path
    assert body["detail"] and body["fix"]
    return body


def test_health_needs_no_key(api_server):
    response = httpx.get(f"{api_server.url}/v1/health")
    assert response.status_code == 200, response.text
    assert response.json()["database"]["ok"] is True


@pytest.mark.parametrize(
    ("authorization", "slug"),
    [
        (None, "missing-api-key"),
        ("Basic dXNlcjpwYXNz", "missing-api-key"),  # not a bearer token
        ("Bearer nonsense", "invalid-api-key"),
        ("Bearer cai_0123456789ab_" + "A" * 43, "invalid-api-key"),
    ],
)
def test_requests_without_a_valid_key_are_401(api_server, authorization, slug):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = httpx.get(f"{api_server.url}/v1/categories", headers=headers)
    _problem(response, 401, slug)
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_key_made_by_the_cli_works_until_it_is_revoked(api_server):
    runner = CliRunner()
    created = runner.invoke(
        cli, ["api-keys", "create", "shop", "--scope", "read", "--owner", "Shop bot"]
    )
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("cai_")
    listed = runner.invoke(cli, ["api-keys", "list"])
    assert "never used" in listed.stdout and token not in listed.stdout
    (described,) = json.loads(runner.invoke(cli, ["api-keys", "list", "--json"]).stdout)
    assert (described["name"], described["scope"], described["owner"]) == (
        "shop",
        "read",
        "Shop bot",
    )
    assert token.startswith(f"cai_{described['prefix']}_") and token not in json.dumps(described)
    assert described["last_used_at"] is None

    headers = {"Authorization": f"Bearer {token}"}
    ok = httpx.get(f"{api_server.url}/v1/categories", headers=headers)
    assert ok.status_code == 200, ok.text
    used = runner.invoke(cli, ["api-keys", "list"])
    assert "never used" not in used.stdout and "owner Shop bot" in used.stdout

    revoked = runner.invoke(cli, ["api-keys", "revoke", "shop"])
    assert revoked.exit_code == 0, revoked.output
    refused = httpx.get(f"{api_server.url}/v1/categories", headers=headers)
    _problem(refused, 401, "revoked-api-key")
    assert refused.headers["www-authenticate"] == "Bearer"
    assert "revoked" in runner.invoke(cli, ["api-keys", "list"]).stdout


def test_the_cli_refuses_a_second_key_of_one_name(api_server):
    runner = CliRunner()
    assert runner.invoke(cli, ["api-keys", "create", "shop", "--scope", "read"]).exit_code == 0
    again = runner.invoke(cli, ["api-keys", "create", "shop", "--scope", "admin"])
    assert again.exit_code == 2
    assert "exists already" in again.output
