"""``catalog-ai fewshot add`` and ``fewshot list`` (in-process runner, copy of the trained bundle)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from catalog_ai.cli import cli
from helpers import one_torch_thread, trained_bundle, write_photo  # noqa: F401 (fixtures)

MAGENTA = (220, 40, 220)


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def hashes(directory: Path) -> dict[str, str]:
    return {str(f.relative_to(directory)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(directory.rglob("*")) if f.is_file()}


def example_tree(root: Path, folders: dict[tuple[str, ...], tuple[int, tuple[int, int, int]]]) -> Path:
    rng = np.random.default_rng(0)
    for path, (n, colour) in folders.items():
        for i in range(n):
            write_photo(root.joinpath(*path) / f"{i:02d}.png", colour, rng)
    return root


@pytest.fixture
def model(trained_bundle, tmp_path) -> Path:  # noqa: F811
    return Path(shutil.copytree(trained_bundle.path, tmp_path / "model"))


def test_add_then_list(catalog_home, model, tmp_path):
    data = example_tree(tmp_path / "examples", {("Veg", "Beet"): (4, MAGENTA), ("Fruit", "Banana"): (2, (235, 220, 40))})
    before = hashes(model)
    parent = json.loads((model / "bundle.json").read_text())["version"]
    added = invoke("fewshot", "add", "--model", model, "--data", data, "--no-catalog")
    assert added.exit_code == 0, added.output
    lines = added.stdout.splitlines()
    assert lines[0].startswith("6 photos in ") and lines[0].endswith("added 1 categories, updated 1")
    assert lines[1] == "  new: Veg > Beet"
    # A new version next to the given one, which is left byte for byte as it was.
    assert lines[2].startswith("new model version ") and f"(derived from {parent})" in lines[2]
    assert lines[3].startswith(f"{parent} is not registered: register the new one with: catalog-ai models register ")
    assert hashes(model) == before
    derived = Path(lines[3].rsplit(" ", 1)[1])
    manifest = json.loads((derived / "bundle.json").read_text())
    assert derived.parent == model.parent and manifest["version"] != parent
    assert manifest["parent"]["version"] == parent and manifest["parent"]["change"].startswith("fewshot add")
    assert not (catalog_home / "catalog.db").exists() and "catalog:" not in added.stdout

    listed = invoke("fewshot", "list", "--model", derived, "--json")
    assert listed.exit_code == 0, listed.output
    data_out = json.loads(listed.stdout)
    assert data_out["categories"] == [{"path": "Veg > Beet", "examples": 4, "source": "fewshot"}]
    assert data_out["model"] == manifest["version"]
    assert data_out["fusion"]["nearest_gate"] is True and set(data_out["fusion"]) >= {"scale", "bias", "open_set_cosine"}
    assert json.loads(invoke("fewshot", "list", "--model", model, "--json").stdout)["categories"] == []

    text = invoke("fewshot", "list", "--model", derived)
    assert text.exit_code == 0 and text.stdout.splitlines() == ["   4  Veg > Beet  (fewshot)"]


def test_list_of_a_model_without_few_shot_categories(catalog_home, model):
    result = invoke("fewshot", "list", "--model", model)
    assert result.exit_code == 0 and result.stdout.strip() == "no few-shot categories"
    assert json.loads(invoke("fewshot", "list", "--model", model, "--json").stdout)["categories"] == []


def test_add_with_the_catalog_imports_the_photos_as_labelled_products(catalog_home, model, tmp_path):
    from sqlalchemy import select

    from catalog_ai.db import Category, Product, dispose_engines, unit_of_work

    data = example_tree(tmp_path / "examples", {("Veg", "Beet"): (3, MAGENTA)})
    result = invoke("fewshot", "add", "--model", model, "--data", data)
    assert result.exit_code == 0, result.output
    assert "  new: Veg > Beet" in result.stdout.splitlines()
    assert "catalog: 3 photos imported as labelled products, 0 already there" in result.stdout
    with unit_of_work() as s:
        products = s.scalars(select(Product)).all()
        assert sorted((p.category.path, p.label_source) for p in products) == [("Veg > Beet", "fewshot")] * 3
        assert s.scalar(select(Category).where(Category.path == "Veg > Beet")) is not None
    dispose_engines()


def test_a_clash_is_one_error_line_naming_the_fix_and_changes_nothing(catalog_home, model, tmp_path):
    data = example_tree(tmp_path / "examples", {("Veg", "Beet"): (2, MAGENTA), ("veg", "carrot"): (2, (30, 60, 220))})
    before = hashes(model)
    result = invoke("fewshot", "add", "--model", model, "--data", data, "--no-catalog")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.stdout == ""
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1
    assert errors[0].startswith("error: 'veg > carrot' clashes with the existing category 'Veg > Carrot'")
    assert "use the existing path or choose a distinct name" in errors[0]
    assert hashes(model) == before
    assert sorted(p.name for p in model.parent.iterdir() if p.is_dir() and p.name != "home") == ["examples", "model"]  # no half version


def test_a_grouping_as_a_category_is_refused(catalog_home, model, tmp_path):
    data = example_tree(tmp_path / "examples", {("Fruit", "Apple"): (2, MAGENTA)})
    before = hashes(model)
    result = invoke("fewshot", "add", "--model", model, "--data", data, "--no-catalog")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines() == [
        "error: 'Fruit > Apple' is a grouping of 2 categories in the model's tree; put the photos in one "
        "of its categories or in a new sub-category"
    ]
    assert hashes(model) == before


def test_data_that_is_not_a_folder_is_one_clean_error(catalog_home, model, tmp_path):
    result = invoke("fewshot", "add", "--model", model, "--data", tmp_path / "missing", "--no-catalog")
    assert result.exit_code == 2 and "is not a folder of example photos" in result.stderr
    assert "Traceback" not in result.output
