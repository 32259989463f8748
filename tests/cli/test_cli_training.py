"""``train``, ``predict``, ``evaluate`` and ``models`` on the command line (in-process runner)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from catalog_ai.cli import cli
from catalog_ai.evaluation import REPORT_FILES
from helpers import DECISION_KEYS, LEAF_PATHS, METRIC_KEYS, isolated_home, make_tree, one_torch_thread, torch_single_thread, write_photo  # noqa: F401



def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """``catalog-ai train`` once for the module: (data folder, bundle folder, its output)."""
    base = tmp_path_factory.mktemp("cli")
    data = make_tree(base / "data", per_class=8)
    with isolated_home(base / "home"), torch_single_thread():
        result = invoke(
            "train",
            "--data",
            data,
            "--backbone",
            "tiny-cnn",
            "--epochs",
            2,
            "--image-size",
            32,
            "--label-smoothing",
            0.05,
            "--weight-averaging",
            "ema0.9",
            "--out",
            base / "model",
            "--accelerator",
            "cpu",
            "--devices",
            "1",
        )
    assert result.exit_code == 0, result.output
    return data, base / "model", result.stdout


def test_train_writes_a_bundle_and_says_what_it_did(trained):
    _, model, output = trained
    assert (model / "bundle.json").is_file() and (model / "model.safetensors").is_file()
    version = json.loads((model / "bundle.json").read_text())["version"]
    # 8 photos per leaf, 10 % held out: one per leaf.
    assert f"model {version} written to {model}" in output
    assert "trained on 28 photos, calibrated on 4 held-out photos, skipped 0 unreadable" in output
    assert f"catalog-ai models register {model}" in output
    config = json.loads((model / "bundle.json").read_text())["training"]["config"]
    assert config["label_smoothing"] == 0.05 and config["backbone"] == "tiny-cnn"
    assert config["weight_averaging"] == "ema0.9"


def test_predict_json(trained, catalog_home, tmp_path):
    data, model, _ = trained
    photos = sorted((data / "Fruit" / "Banana").glob("*.png"))[:2]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    result = invoke("predict", "--model", model, "--json", "--top-k", 2, *photos, broken)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["image"] for r in rows] == [*map(str, photos), str(broken)]
    for row in rows[:2]:
        assert DECISION_KEYS <= set(row)
        assert row["model_version"] == json.loads((model / "bundle.json").read_text())["version"]
        assert row["leaf_path"] in LEAF_PATHS
        assert [len(level) for level in row["levels"]] == [2, 2, 2]  # top-2 of each of the 3 depths
    assert set(rows[2]) == {"image", "error"} and rows[2]["error"]


def test_predict_text_output(trained, catalog_home):
    data, model, _ = trained
    photo = sorted((data / "Veg" / "Carrot").glob("*.png"))[0]
    result = invoke("predict", "--model", model, photo)
    assert result.exit_code == 0, result.output
    assert (
        str(photo) in result.stdout
        and "depth 1:" in result.stdout
        and "model tiny-cnn-" in result.stdout
    )


def test_evaluate_json_and_report(trained, catalog_home, tmp_path):
    _, model, _ = trained
    test_data = make_tree(tmp_path / "test", per_class=3, seed=5)
    result = invoke(
        "evaluate", "--model", model, "--data", test_data, "--json", "--report", tmp_path / "report"
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    for key in METRIC_KEYS:
        assert key in metrics, key
    assert metrics["n_images"] == 12
    assert set(metrics["coverage_at_precision"]) == {"0.95", "0.98", "0.99"}
    assert len(metrics["depth_accuracy"]) == 3
    assert metrics["top5_accuracy"] == 1.0  # only 4 leaves: the true one is always in the top 5
    for name in REPORT_FILES:
        path = tmp_path / "report" / name
        assert path.is_file() and path.stat().st_size > 0, name
        if name.endswith(".png"):
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_on_categories_the_model_does_not_know_is_an_error(
    trained, catalog_home, tmp_path
):
    _, model, _ = trained
    other = make_tree(tmp_path / "other", per_class=1, empty=("Dairy", "Milk"))
    (other / "Dairy" / "Milk" / "m.png").write_bytes(
        (other / "Veg" / "Carrot" / "carrot-00.png").read_bytes()
    )
    result = CliRunner().invoke(cli, ["evaluate", "--model", str(model), "--data", str(other)])
    assert result.exit_code == 2 and "'Dairy" in result.output and "Traceback" not in result.output


def test_models_register_activate_list(trained, catalog_home):
    _, model, _ = trained
    version = json.loads((model / "bundle.json").read_text())["version"]
    refused = CliRunner().invoke(cli, ["models", "register", str(model)])
    assert refused.exit_code == 2 and "--add-categories" in refused.output
    registered = invoke("models", "register", model, "--add-categories")
    assert registered.exit_code == 0, registered.output
    assert (
        f"registered {version}; activate with: catalog-ai models activate {version}"
        in registered.stdout
    )
    listed = invoke("models", "list").stdout
    assert re.search(
        rf"^  {re.escape(version)}  tiny-cnn  live: auto-accept precision not measured yet; "
        rf"leaf accuracy not measured yet; 0 auto-accepted, 0 audited; "
        rf"train hold-out leaf accuracy \d\.\d{{3}}$",
        listed,
        re.M,
    )
    activated = invoke("models", "activate", version)
    assert activated.exit_code == 0 and f"active model: {version}" in activated.stdout
    listed = invoke("models", "list").stdout
    assert re.search(rf"^\* {re.escape(version)}  tiny-cnn", listed, re.M)
    unknown = CliRunner().invoke(cli, ["models", "activate", "nope"])
    assert unknown.exit_code == 2 and "no registered model version 'nope'" in unknown.output


@pytest.mark.parametrize("args", [["--from-catalog", "--data", "DATA"], []])
def test_train_needs_exactly_one_data_source(args, catalog_home, tmp_path):
    args = [str(tmp_path) if a == "DATA" else a for a in args]
    result = CliRunner().invoke(
        cli, ["train", *args, "--out", str(tmp_path / "out"), "--backbone", "tiny-cnn"]
    )
    assert result.exit_code == 2
    assert "give exactly one of --data DIR or --from-catalog" in result.output
    assert not (tmp_path / "out").exists()


def test_train_with_an_unknown_backbone_is_one_clean_error(catalog_home, tmp_path):
    data = make_tree(tmp_path / "data", per_class=4)
    result = CliRunner().invoke(
        cli,
        ["train", "--data", str(data), "--out", str(tmp_path / "out"), "--backbone", "no-such-net"],
    )
    assert result.exit_code == 2
    assert "no-such-net" in result.output and "Traceback" not in result.output


def _label_by_model(*, every: bool = False) -> None:
    """Make one product of each category (or ``every`` product) look auto-accepted by a model."""
    from sqlalchemy import func, select, update

    from catalog_ai.db import LabelSource, Product, dispose_engines, unit_of_work

    with unit_of_work() as session:
        ids = select(func.min(Product.id)).group_by(Product.category_id)
        query = update(Product) if every else update(Product).where(Product.id.in_(ids))
        session.execute(query.values(label_source=LabelSource.MODEL))
    dispose_engines()


def test_train_from_catalog_after_import_folder(catalog_home, tmp_path):
    data = make_tree(tmp_path / "data", per_class=8, seed=3)
    imported = invoke("catalog", "import-folder", data)
    assert imported.exit_code == 0 and "imported 32, duplicates 0, failed 0" in imported.output
    _label_by_model()  # a model's guesses (one per category): not training data unless asked
    described = (
        "catalog (28 photos labelled by people (28 import); 4 auto-accepted photos left out)"
    )
    result = invoke(
        "train",
        "--from-catalog",
        "--backbone",
        "tiny-cnn",
        "--epochs",
        1,
        "--image-size",
        32,
        "--out",
        tmp_path / "model",
        "--accelerator",
        "cpu",
        "--devices",
        "1",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"training on the {described}"
    trained = re.search(r"trained on (\d+) photos, calibrated on (\d+) held-out", result.stdout)
    assert trained and int(trained[1]) + int(trained[2]) == 28
    manifest = json.loads((tmp_path / "model" / "bundle.json").read_text())
    assert manifest["training"]["data"] == described
    taxonomy = json.loads((tmp_path / "model" / "taxonomy.json").read_text())
    assert sorted(" > ".join(n["path"]) for n in taxonomy["nodes"]) == sorted(
        [
            "Fruit",
            "Fruit > Apple",
            "Fruit > Apple > Green",
            "Fruit > Apple > Red",
            "Fruit > Banana",
            "Veg",
            "Veg > Carrot",
        ]
    )
    # The catalog already has every category: registering needs no --add-categories.
    assert (
        invoke("models", "register", tmp_path / "model", "--activate")
        .stdout.rstrip()
        .endswith("(active)")
    )


def test_train_from_catalog_leaves_rare_categories_to_prototypes(catalog_home, tmp_path):
    data = make_tree(tmp_path / "data", per_class=8, seed=4)
    rng = np.random.default_rng(5)
    for i in range(3):  # a category with 3 photos: below the default minimum of 5
        write_photo(data / "Veg" / "Kale" / f"kale-{i}.png", (120, 120, 120), rng)
    assert invoke("catalog", "import-folder", data).exit_code == 0
    result = invoke("train", "--from-catalog", "--backbone", "tiny-cnn", "--epochs", 1, "--image-size", 32,
                    "--out", tmp_path / "model", "--accelerator", "cpu", "--devices", "1")
    assert result.exit_code == 0, result.output
    assert "1 categories with fewer than 5 photos served by few-shot prototypes (3 photos)" in result.stdout
    taxonomy = json.loads((tmp_path / "model" / "taxonomy.json").read_text())
    assert "Veg > Kale" not in {" > ".join(n["path"]) for n in taxonomy["nodes"]}  # no head output
    listed = json.loads(invoke("fewshot", "list", "--model", tmp_path / "model", "--json").stdout)
    kale = [c for c in listed["categories"] if c["path"] == "Veg > Kale"]
    assert len(kale) == 1 and kale[0]["examples"] == 3


def test_model_labels_train_only_when_asked_and_the_flag_needs_from_catalog(catalog_home, tmp_path):
    data = make_tree(tmp_path / "data", per_class=2, seed=6)
    assert invoke("catalog", "import-folder", data).exit_code == 0
    _label_by_model(every=True)
    refused = CliRunner().invoke(cli, ["train", "--from-catalog", "--out", str(tmp_path / "m")])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert ("8 photos auto-accepted from a model are left out: add --include-model-labels"
            in refused.output)
    assert not (tmp_path / "m").exists()
    alone = CliRunner().invoke(cli, ["train", "--data", str(data), "--include-model-labels",
                                     "--out", str(tmp_path / "m")])
    assert alone.exit_code == 2
    assert "--include-model-labels goes with --from-catalog" in alone.output
