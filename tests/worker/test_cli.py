"""The background-processing commands on the embedded catalog (SQLite, tasks in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from catalog_ai.cli import cli
from catalog_ai.db import migrate
from worker.support import activate, bad_files, shared_model


def _run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def catalog(catalog_home: Path) -> Path:
    migrate.upgrade()
    return catalog_home


def test_ingest_classifies_in_process_and_reports_every_file(catalog, tmp_path, tmp_path_factory):
    photos, bundle = shared_model(tmp_path_factory)
    activate(bundle.path)
    folder = tmp_path / "uploads"
    (folder / "shelf").mkdir(parents=True)
    for photo in photos[:5]:
        (folder / "shelf" / photo.name).write_bytes(photo.read_bytes())
    bad = bad_files(folder / "bad")
    (folder / "readme.txt").write_text("not a photo")
    result = _run("ingest", str(folder), str(photos[0]))  # photos[0] is also in the folder
    assert result.exit_code == 1, result.output  # some files failed, the rest went in
    assert "product ids: " in result.output
    assert "6 new products, 1 already in the catalog, 3 failed, 1 ignored" in result.output
    assert f"failed: {bad['empty']}: file is empty" in result.output
    assert "ignored (not a photo file name)" in result.output and "readme.txt" in result.output

    status = json.loads(_run("status", "--json").output)
    counts = status["by_status"]
    assert counts["pending"] == counts["processing"] == 0
    assert counts["suggested"] + counts["accepted"] == 5  # the cut-off PNG failed in the "worker"
    assert counts["failed"] == 4 and status["oldest_pending_s"] is None
    assert status["broker"]["broker"] == "in-process" and status["active_model"] == bundle.version
    assert any("truncated or corrupt" in f["error"] for f in status["recent_failures"])

    text = _run("status").output
    assert "tasks run in-process" in text and "catalog-ai retry --failed" in text


def test_ingest_json_lists_ids_duplicates_and_failures(catalog, tmp_path, tmp_path_factory):
    photos, _ = shared_model(tmp_path_factory)
    empty = bad_files(tmp_path / "bad")["empty"]
    data = json.loads(_run("ingest", "--json", str(photos[0]), str(photos[0]), str(empty)).output)
    assert len(data["created"]) == 1
    assert data["duplicates"] == [{"file": str(photos[0]), "product_id": data["created"][0]}]
    assert data["failed"][0]["reason"] == "file is empty"


def test_status_shows_how_long_the_oldest_upload_waits_without_a_model(catalog, tmp_path_factory):
    photos, _ = shared_model(tmp_path_factory)
    assert _run("ingest", str(photos[0])).exit_code == 0
    status = json.loads(_run("status", "--json").output)
    assert status["by_status"]["pending"] == 1 and status["active_model"] is None
    assert 0 <= status["oldest_pending_s"] < 120


def test_worker_refuses_without_a_broker_and_says_why(catalog):
    result = _run("worker")
    assert result.exit_code == 2
    assert "CATALOG_AI_BROKER_URL" in result.output and "in-process" in result.output


def test_retry_needs_ids_or_failed(catalog):
    assert _run("retry").exit_code == 2
    assert _run("retry", "--failed", "3").exit_code == 2


def test_sweep_with_nothing_stale(catalog):
    result = _run("sweep")
    assert result.exit_code == 0 and "0 products enqueued again" in result.output


def test_ingest_of_a_missing_path_is_refused_before_anything_is_stored(catalog, tmp_path):
    result = _run("ingest", str(tmp_path / "nope.jpg"))
    assert result.exit_code == 2 and "does not exist" in result.output
