"""The command line, run in-process with click's runner against a temporary catalog."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from catalog_ai.cli import cli

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "taxonomy"


@pytest.fixture
def run(catalog_home):
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(cli, list(args), catch_exceptions=False)

    return invoke


def test_db_upgrade_creates_the_embedded_database(run, catalog_home):
    result = run("db", "upgrade")
    assert result.exit_code == 0, result.output
    assert (catalog_home / "catalog.db").is_file()
    output = run("db", "current").output
    # The newest migration on disk is the head; a fresh upgrade must land on it.
    heads = sorted(p.stem for p in (ROOT / "migrations" / "versions").glob("0*.py"))
    assert f"current: {heads[-1]}" in output
    assert f"head: {heads[-1]}" in output


def test_google_taxonomy_import_and_show(run):
    result = run("taxonomy", "import", str(FIXTURES / "google_excerpt.txt"))
    assert result.exit_code == 0, result.output
    assert "38 categories read" in result.output and "38 added" in result.output
    again = run("taxonomy", "import", str(FIXTURES / "google_excerpt.txt"))
    assert "0 added, 38 already in the catalog" in again.output
    shown = run("taxonomy", "show", "--max-depth", "1").output.splitlines()
    assert "Animals & Pet Supplies" in shown


def test_bad_taxonomy_file_is_one_clean_error_line(run, tmp_path):
    bad = tmp_path / "tree.txt"
    bad.write_text("Fruit > Apple\nFruit >  > Kiwi\n")
    result = CliRunner().invoke(cli, ["taxonomy", "import", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:2" in result.output and "Traceback" not in result.output


def test_import_folder_reports_summary_and_failures(run, tmp_path):
    root = tmp_path / "photos"
    (root / "Fruit" / "Kiwi").mkdir(parents=True)
    buf = io.BytesIO()
    Image.new("RGB", (20, 20), (90, 120, 30)).save(buf, "JPEG")
    (root / "Fruit" / "Kiwi" / "k1.jpg").write_bytes(buf.getvalue())
    (root / "Fruit" / "Kiwi" / "empty.jpg").write_bytes(b"")
    result = CliRunner().invoke(cli, ["catalog", "import-folder", str(root)])
    assert result.exit_code == 0, result.output
    assert "imported 1, duplicates 0, failed 1" in result.output
    assert "empty.jpg" in result.output
    stats = json.loads(CliRunner().invoke(cli, ["catalog", "stats"]).output)
    assert stats["products"] == 1 and stats["by_status"]["accepted"] == 1


def test_backbones_list_json(run):
    data = json.loads(run("backbones", "list", "--json").output)
    names = {b["name"] for b in data["backbones"]}
    assert {"tiny-cnn", "efficientnet_lite0"} <= names
    lite0 = next(b for b in data["backbones"] if b["name"] == "efficientnet_lite0")
    assert lite0["offline_weights"] is True and lite0["embedding_dim"] == 1280


def test_python_dash_m_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "catalog_ai", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "import-folder" not in out and "catalog" in out and "taxonomy" in out


def test_users_hash_password_prints_only_a_verifiable_line(catalog_home):
    from catalog_ai.auth import load_auth_config

    # Prompts go to stderr, so `... >> reviewers.txt` gets the line alone.
    password = "correct horse battery"
    result = CliRunner().invoke(cli, ["users", "hash-password", "alice"], input=f"{password}\n{password}\n")
    assert result.exit_code == 0, result.output
    line = result.stdout.strip()
    assert line.startswith("alice:$argon2id$") and "\n" not in line and "Password" not in line
    auth = load_auth_config({"CATALOG_AI_USERS": line})
    assert auth.authenticate("alice", password) == "alice" and auth.authenticate("alice", "pw-2") is None

    piped = CliRunner().invoke(cli, ["users", "hash-password", "bob", "--stdin"], input=f"{password}\n")
    assert piped.exit_code == 0, piped.output
    assert load_auth_config({"CATALOG_AI_USERS": piped.stdout.strip()}).authenticate("bob", password) == "bob"

    bad = CliRunner().invoke(cli, ["users", "hash-password", "a:b"], input=f"{password}\n{password}\n")
    assert bad.exit_code != 0 and "may not be empty or contain" in bad.output


def test_users_hash_password_refuses_short_and_command_line_passwords(catalog_home):
    short = CliRunner().invoke(cli, ["users", "hash-password", "alice"], input="x\nx\n")
    assert short.exit_code == 2 and "use at least 12" in short.output and "$argon2" not in short.stdout
    argv = CliRunner().invoke(cli, ["users", "hash-password", "alice", "--password", "long-enough-password"])
    assert argv.exit_code == 2 and "never taken from the command line" in argv.output
    assert "$argon2" not in argv.stdout


def test_import_folder_prints_relabelled_photos_and_label_conflicts(run, tmp_path):
    from sqlalchemy import select

    from catalog_ai.db import Category, LabelSource, Product, ProductStatus, unit_of_work

    root = tmp_path / "photos"
    (root / "Fruit" / "Kiwi").mkdir(parents=True)
    for name, colour in (("k1.jpg", (90, 120, 30)), ("k2.jpg", (10, 200, 30))):
        buf = io.BytesIO()
        Image.new("RGB", (20, 20), colour).save(buf, "JPEG")
        (root / "Fruit" / "Kiwi" / name).write_bytes(buf.getvalue())
    (root / "Fruit" / "Lime").mkdir()
    # The same bytes as k2 under another category: a conflict between two people's labels.
    twin = (root / "Fruit" / "Kiwi" / "k2.jpg").read_bytes()
    (root / "Fruit" / "Lime" / "l1.jpg").write_bytes(twin)
    assert run("catalog", "import-folder", str(root)).exit_code == 0
    with unit_of_work() as session:  # k1 becomes a model's guess; k2 stays a person's Kiwi
        lime = session.scalar(select(Category).where(Category.path == "Fruit > Lime"))
        for product in session.scalars(select(Product)):
            if product.title == "k1":
                product.label_source, product.category_id = LabelSource.MODEL, lime.id
    result = CliRunner().invoke(cli, ["catalog", "import-folder", str(root)])
    assert result.exit_code == 0, result.output
    assert "imported 0, duplicates 2, failed 0, relabelled 1, label conflicts 1" in result.output
    assert "conflict:" in result.output and "l1.jpg" in result.output
    assert "'Fruit > Kiwi'" in result.output and "'Fruit > Lime'" in result.output
    with unit_of_work() as session:
        k1 = session.scalar(select(Product).where(Product.title == "k1"))
        assert (k1.category.path, k1.label_source, k1.status) == (
            "Fruit > Kiwi", LabelSource.IMPORT, ProductStatus.ACCEPTED
        )
