"""``catalog-ai webhooks``: add (the secret once), list, deliveries, redeliver, sweep, remove,
on the embedded catalog with a real receiver on loopback."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from webhook_receiver import Receiver

from catalog_ai.cli import cli
from catalog_ai.db import unit_of_work
from catalog_ai.services.webhook_signing import verify_signature
from catalog_ai.services.webhooks import emit


@pytest.fixture
def run(catalog_home, monkeypatch):
    monkeypatch.setenv("CATALOG_AI_WEBHOOK_TIMEOUT", "1")
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(cli, list(args), catch_exceptions=False)

    return invoke


@pytest.fixture
def receiver():
    r = Receiver(lambda n: 404 if n == 1 else 200)  # the first try is refused for good
    yield r
    r.close()


def test_add_list_deliveries_redeliver_sweep_and_remove(run, receiver):
    bad = run("webhooks", "add", "ftp://x/y", "--events", "product.failed")
    assert bad.exit_code == 2 and "http:// or https://" in bad.output
    bad = run("webhooks", "add", receiver.url, "--events", "product.gone")
    assert bad.exit_code == 2 and "unknown event type 'product.gone'" in bad.output

    added = run("webhooks", "add", receiver.url, "--events", "product.failed", "--json")
    assert added.exit_code == 0, added.output
    hook = json.loads(added.output)
    assert hook["secret"].startswith("whsec_") and hook["events"] == ["product.failed"]
    listed = run("webhooks", "list", "--json")
    (row,) = json.loads(listed.output)
    assert row["id"] == hook["id"] and "secret" not in row and hook["secret"] not in listed.output

    with unit_of_work() as session:  # left for the sweep: no dispatcher
        event_id = emit(session, "product.failed", {"product_id": 1}, dispatcher=None)
    swept = run("webhooks", "sweep")
    assert swept.exit_code == 0 and "1 deliveries due" in swept.output
    (failed,) = json.loads(run("webhooks", "deliveries", "--status", "failed", "--json").output)
    assert failed["event_id"] == event_id and failed["tries"][0]["status_code"] == 404
    assert "answered 404" in failed["last_error"]
    text = run("webhooks", "deliveries").output
    assert f"{failed['id']}  failed" in text and "404" in text

    again = run("webhooks", "redeliver", str(failed["id"]))
    assert again.exit_code == 0 and f"delivery {failed['id']}: delivered" in again.output
    (done,) = json.loads(run("webhooks", "deliveries", "--json").output)
    assert done["status"] == "delivered" and [t["status_code"] for t in done["tries"]] == [404, 200]
    first, second = receiver.seen()
    assert first.event_id == second.event_id == event_id and first.body == second.body
    assert verify_signature(hook["secret"], second.headers, second.body)

    missing = run("webhooks", "redeliver", "999")
    assert missing.exit_code == 2 and "does not exist" in missing.output
    assert run("webhooks", "remove", str(hook["id"])).exit_code == 0
    assert json.loads(run("webhooks", "list", "--json").output) == []
    assert run("webhooks", "deliveries").output.strip() == "no deliveries"
