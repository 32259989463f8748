"""The feed commands end to end: ``taxonomy import`` of Shopify's files, ``catalog
import-shopify-csv``, ``export`` (on the embedded SQLite catalog, and once on PostgreSQL)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from services.feeds_support import ACTIVEWEAR, SHOPIFY_TAXONOMY, G, shop_export

from catalog_ai.cli import cli
from catalog_ai.settings import reset_settings

JSON_TAXONOMY = SHOPIFY_TAXONOMY.with_suffix(".json")


def _run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _shop_round(tmp_path: Path) -> None:
    result = _run("taxonomy", "import", str(SHOPIFY_TAXONOMY))
    assert result.exit_code == 0, result.output
    assert "252 categories read (depth up to 6" in result.output

    export_file = shop_export(tmp_path / "shop")
    result = _run("catalog", "import-shopify-csv", str(export_file), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [c["handle"] for c in summary["created"]] == ["classic-tee", "mouse-toy", "warm-hoodie"]
    assert [c["status"] for c in summary["created"]] == ["accepted", "pending", "accepted"]
    assert summary["failed"] == [] and summary["rows"] == 8
    assert [(e["handle"], Path(e["photo"]).name) for e in summary["photo_errors"]] == [
        ("warm-hoodie", "missing.png")
    ]

    again = _run("catalog", "import-shopify-csv", str(export_file))
    assert again.exit_code == 0
    assert "3 products in 8 rows: 0 created (0 with their Product Category), 3 already" in (
        again.stdout
    )

    out = tmp_path / "update.csv"
    result = _run("export", "--format", "shopify-csv", "--output", str(out))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open(encoding="utf-8", newline="")))
    assert [(r["Handle"], r["Product Category"]) for r in rows] == [
        ("classic-tee", ACTIVEWEAR),
        ("warm-hoodie", "Apparel & Accessories > Clothing > Clothing Tops > Hoodies"),
    ]
    assert not out.with_name("update.csv.part").exists()

    result = _run("export", "--format", "jsonl")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["category_external_id"] for r in lines if r["decision"] == "final"] == [
        G + "aa-1-1",
        G + "aa-1-13-13",
    ]


def test_a_shop_connected_on_sqlite(catalog_home: Path, tmp_path: Path) -> None:
    _shop_round(tmp_path)


@pytest.mark.integration
def test_a_shop_connected_on_postgresql(
    catalog_home: Path, tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CATALOG_AI_DATABASE_URL", postgres_url)
    reset_settings()
    assert _run("db", "upgrade").exit_code == 0
    _shop_round(tmp_path)


def test_the_shopify_json_imports_like_the_text(catalog_home: Path) -> None:
    result = _run("taxonomy", "import", str(JSON_TAXONOMY))
    assert result.exit_code == 0, result.output
    assert "51 categories read" in result.output and "51 added" in result.output
    # The same categories from the text file are already there, with the same GIDs.
    result = _run("taxonomy", "import", str(SHOPIFY_TAXONOMY))
    assert result.exit_code == 0, result.output
    assert "201 added, 51 already in the catalog" in result.output


def test_failures_are_reported_and_set_the_exit_status(catalog_home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "export.csv"
    bad.write_text(
        "Handle,Title,Product Category,Image Src\nlonely,Lonely,Nowhere > Land,\n", encoding="utf-8"
    )
    result = _run("catalog", "import-shopify-csv", str(bad))
    assert result.exit_code == 1
    assert "failed: lonely (line 2): Product Category 'Nowhere > Land' is not in" in result.stderr
    assert "1 products in 1 rows: 0 created" in result.stdout
    not_shopify = tmp_path / "other.csv"
    not_shopify.write_text("id,name\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["catalog", "import-shopify-csv", str(not_shopify)])
    assert result.exit_code == 2 and "no 'Handle' column" in result.output


def test_export_to_stdout_of_an_empty_catalog(catalog_home: Path) -> None:
    result = _run("export", "--format", "google-merchant", "--status", "accepted")
    assert result.exit_code == 0
    assert list(csv.reader(io.StringIO(result.stdout), delimiter="\t")) == [
        ["id", "title", "google_product_category", "product_type"]
    ]
    assert "0 products written" in result.stderr


def test_the_commands_choices_are_the_services() -> None:
    from catalog_ai.cli import export as command
    from catalog_ai.db import ProductStatus
    from catalog_ai.services.export import EXPORT_FORMATS

    assert [s.value for s in ProductStatus] == command.STATUSES
    assert tuple(command._FORMATS) == EXPORT_FORMATS


def test_a_failed_export_leaves_the_old_file(catalog_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "feed.tsv"
    out.write_text("the old feed\n", encoding="utf-8")
    result = CliRunner().invoke(
        cli, ["export", "--format", "csv", "--status", "pending", "--output", str(tmp_path)]
    )
    assert result.exit_code == 2  # a folder is not a file: refused before anything is written
    from unittest import mock

    with mock.patch("catalog_ai.services.export.iter_rows", side_effect=RuntimeError("boom")):
        result = CliRunner().invoke(cli, ["export", "--format", "csv", "--output", str(out)])
    assert result.exit_code != 0
    assert out.read_text(encoding="utf-8") == "the old feed\n"
    assert not (tmp_path / "feed.tsv.part").exists()
