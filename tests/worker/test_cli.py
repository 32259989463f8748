"""The background-processing commands on the embedded catalog (SQLite, tasks in-process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

import catalog_ai
from catalog_ai.cli import cli
from catalog_ai.db import Product, ProductImage, migrate, unit_of_work
from catalog_ai.photos.store import content_hash
from catalog_ai.settings import reset_settings
from worker.support import activate, bad_files, make_photos, shared_model


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
    # 3 refused at ingest, and the cut-off PNG (its header is fine) failed in classification,
    # which ran in this process: the command waited for it and reports it too.
    assert "6 new products, 1 already in the catalog, 4 failed, 1 ignored" in result.output
    assert f"failed: {bad['empty']}: file is empty" in result.output
    assert f"failed: {bad['corrupt']}: truncated or corrupt" in result.output
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


# --- ingest: every path reported, exit status ---------------------------------------------------


def _products() -> int:
    with unit_of_work() as session:
        return session.scalar(select(func.count()).select_from(Product))


def test_ingest_reports_a_missing_path_and_goes_on_with_the_rest(catalog, tmp_path):
    good = make_photos(tmp_path / "in", 1)[0]
    missing = tmp_path / "missing" / "x.jpg"
    result = _run("ingest", str(good), str(missing))
    assert result.exit_code == 1, result.output
    assert f"failed: {missing}: file not found" in result.output
    assert "1 new products, 0 already in the catalog, 1 failed" in result.output
    assert "Traceback" not in result.output and _products() == 1  # nothing made for the typo


def test_ingest_exits_1_when_every_file_failed_and_0_when_all_went_in(catalog, tmp_path):
    bad = bad_files(tmp_path / "bad")
    assert _run("ingest", str(bad["empty"]), str(bad["not_an_image"])).exit_code == 1
    good = make_photos(tmp_path / "in", 2)
    assert _run("ingest", *map(str, good)).exit_code == 0
    assert _run("ingest", str(good[0])).exit_code == 0  # already in the catalog is not a failure


def test_ingest_usage_errors_exit_2(catalog, tmp_path):
    good = make_photos(tmp_path / "in", 2)
    result = _run("ingest", "--external-id", "SKU-1", *map(str, good))
    assert result.exit_code == 2 and "names one product" in result.output
    assert _run("ingest", "--chunk-size", "0", str(good[0])).exit_code == 2
    assert _run("ingest").exit_code == 2
    assert _products() == 0


def test_ingest_help_documents_the_exit_status(catalog):
    text = _run("ingest", "--help").output
    assert "Exit status:" in text
    assert "0  every file" in text and "1  some files" in text and "2  usage error" in text


def test_re_ingesting_a_bad_file_reports_the_same_failed_product(catalog, tmp_path):
    junk = bad_files(tmp_path / "bad")["not_an_image"]
    first = json.loads(_run("ingest", "--json", str(junk)).output)
    again = json.loads(_run("ingest", "--json", str(junk)).output)
    assert first["failed"][0]["product_id"] == again["failed"][0]["product_id"] is not None
    assert _products() == 1


def test_ingest_of_a_folder_takes_its_photos_recursively_sorted_and_lists_the_rest(
    catalog, tmp_path
):
    folder = tmp_path / "uploads"
    photos = make_photos(folder / "b-shelf", 2)
    photos += make_photos(folder / "a-shelf" / "deep", 1, seed=5)
    (folder / "notes.txt").write_text("not a photo")
    (folder / ".DS_Store").write_bytes(b"\0")
    make_photos(folder / ".thumbnails", 1, seed=7)
    (tmp_path / "empty").mkdir()
    data = json.loads(_run("ingest", "--json", str(folder), str(tmp_path / "empty")).output)
    assert [i["file"] for i in data["ingested"]] == [str(p) for p in [photos[2], *photos[:2]]]
    assert {(i["file"], i["reason"]) for i in data["ignored"]} == {
        (str(folder / "notes.txt"), "not a photo file name"),
        (str(folder / ".DS_Store"), "hidden file"),
        (str(folder / ".thumbnails"), "hidden folder"),
    }
    [empty] = data["failed"]
    assert empty["file"] == str(tmp_path / "empty") and empty["product_id"] is None
    assert "folder holds no photo files" in empty["reason"]
    assert _run("ingest", str(tmp_path / "empty")).exit_code == 1


# --- ingest: concurrent processes -----------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def any_catalog(request, catalog_home, monkeypatch) -> dict[str, str]:
    """The environment of ``catalog-ai`` processes on a migrated catalog, once on the embedded
    SQLite file and once on the real PostgreSQL."""
    env = {**os.environ, "CATALOG_AI_HOME": str(catalog_home), "PYTHONPATH": _pythonpath()}
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        monkeypatch.setenv("CATALOG_AI_DATABASE_URL", url)
        env["CATALOG_AI_DATABASE_URL"] = url
        reset_settings()
    migrate.upgrade()
    return env


def _pythonpath() -> str:
    # The child processes must import this checkout's catalog_ai, as the test process does.
    root = str(Path(catalog_ai.__file__).resolve().parents[1])
    return os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])


def test_two_ingest_processes_with_overlapping_photos_lose_nothing(any_catalog, tmp_path):
    """The finding: 50 shared + 20 own photos each, chunks of 8, two processes at once. One
    crashed with an IntegrityError and its own 20 photos were never ingested."""
    shared = make_photos(tmp_path / "shared", 50, seed=1)
    own = [make_photos(tmp_path / "a", 20, seed=2), make_photos(tmp_path / "b", 20, seed=3)]
    # The second walks the shared photos backwards, so the two meet in the middle of chunks
    # (on PostgreSQL that can deadlock: the loser's chunk is retried).
    given = [[*shared, *own[0]], [*reversed(shared), *own[1]]]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "catalog_ai",
                "ingest",
                "--chunk-size",
                "8",
                "--json",
                *map(str, files),
            ],
            env=any_catalog,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for files in given
    ]
    ended = [(proc.communicate(timeout=300), proc.returncode) for proc in procs]
    assert [rc for _, rc in ended] == [0, 0], [err[-2000:] for (_, err), _ in ended]
    outcomes = []
    for ((out, _), _), files in zip(ended, given, strict=True):
        data = json.loads(out)
        named = [(i["file"], i["product_id"]) for i in data["ingested"] + data["duplicates"]]
        assert sorted(f for f, _ in named) == sorted(map(str, files)) and not data["failed"]
        outcomes.append(dict(named))
    with unit_of_work() as session:
        rows = session.execute(select(ProductImage.content_hash, ProductImage.product_id))
        photos = {digest: pid for digest, pid in rows}
        assert _products() == len(photos) == 90  # every photo once, no product without one
    for named in outcomes:
        for file, pid in named.items():
            assert photos[content_hash(Path(file).read_bytes())] == pid
