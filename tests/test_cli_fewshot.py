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
    added = invoke("fewshot", "add", "--model", model, "--data", data, "--no-catalog")
    assert added.exit_code == 0, added.output
    lines = added.stdout.splitlines()
    assert lines[0].startswith("6 photos in ") and lines[0].endswith("added 1 categories, updated 1")
    assert lines[1:] == ["  new: Veg > Beet"]
    assert not (catalog_home / "catalog.db").exists() and "catalog:" not in added.stdout

    listed = invoke("fewshot", "list", "--model", model, "--json")
    assert listed.exit_code == 0, listed.output
    data_out = json.loads(listed.stdout)
    assert data_out["categories"] == [{"path": "Veg > Beet", "examples": 4, "source": "fewshot"}]
    assert data_out["model"] == json.loads((model / "bundle.json").read_text())["version"]
    assert data_out["fusion"]["nearest_gate"] is True and set(data_out["fusion"]) >= {"scale", "bias", "open_set_cosine"}

    text = invoke("fewshot", "list", "--model", model)
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


def test_refine_moves_a_one_photo_category_towards_its_unlabelled_photos(catalog_home, model, tmp_path):
    from catalog_ai.prototypes import PrototypeMemory

    # One poor example (darker than the category's photos usually are) ...
    data = example_tree(tmp_path / "examples", {("Veg", "Beet"): (1, (150, 20, 150))})
    assert invoke("fewshot", "add", "--model", model, "--data", data, "--no-catalog").exit_code == 0
    before = PrototypeMemory.load(model)
    # ... and a backlog of unlabelled photos: typical beets, known categories, one broken file.
    pool = example_tree(tmp_path / "backlog", {("a",): (6, MAGENTA), ("b",): (6, (40, 190, 40)),
                                               ("c",): (6, (30, 60, 220))})
    (pool / "a" / "broken.jpg").write_bytes(b"not a photo")
    result = invoke("fewshot", "refine", "--model", model, "--pool", pool, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["photos"] == 18 and len(out["unreadable"]) == 1 and "broken.jpg" in out["unreadable"][0]
    assert set(out["taken"]) == {"Veg > Beet"} and 3 < out["taken"]["Veg > Beet"] <= 18

    after = PrototypeMemory.load(model)
    beet = before.paths.index("Veg > Beet")
    assert np.array_equal(after.sums, before.sums) and np.array_equal(after.counts, before.counts)
    assert not np.allclose(after.prototypes()[beet], before.prototypes()[beet])
    trained = [i for i, s in enumerate(after.sources) if s == "train"]
    assert np.allclose(after.prototypes()[trained], before.prototypes()[trained])
    # The refined prototype is nearer to the typical beet photos than the single example was.
    typical = example_tree(tmp_path / "typical", {("x",): (4, MAGENTA)})
    from catalog_ai.inference.predictor import Predictor

    predictor = Predictor.load(model)
    emb = predictor.forward([predictor.prepare(f) for f in sorted((typical / "x").iterdir())])[0]
    assert after.similarities(emb)[:, beet].mean() > before.similarities(emb)[:, beet].mean()

    listed = invoke("fewshot", "list", "--model", model)
    assert listed.stdout.splitlines()[-1] == "refined with 18 unlabelled photos (`fewshot refine`)"


def test_refine_without_few_shot_categories_or_photos_is_one_clean_error(catalog_home, model, tmp_path):
    pool = example_tree(tmp_path / "backlog", {("a",): (2, MAGENTA)})
    before = hashes(model)
    result = invoke("fewshot", "refine", "--model", model, "--pool", pool)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "no few-shot categories to refine: add some with `catalog-ai fewshot add` first" in result.stderr
    data = example_tree(tmp_path / "examples", {("Veg", "Beet"): (1, MAGENTA)})
    assert invoke("fewshot", "add", "--model", model, "--data", data, "--no-catalog").exit_code == 0
    before = hashes(model)
    (tmp_path / "empty").mkdir()
    result = invoke("fewshot", "refine", "--model", model, "--pool", tmp_path / "empty")
    assert result.exit_code == 2 and "no photos in the pool" in result.stderr
    result = invoke("fewshot", "refine", "--model", model, "--pool", tmp_path / "missing")
    assert result.exit_code == 2 and "does not exist" in result.output
    assert hashes(model) == before
